// The RTL accelerator behind the HLS IP's interface: the same AXI-Lite register map (axi_lite_ctrl.sv,
// shared with mtl_moe_accel.sv), the same port names (ap_clk, ap_rst_n, s_axi_control_*, m_axi_gmem_w_*,
// m_axi_gmem_w1_* with two weight ports, m_axi_gmem_io_*, interrupt), and the layer-program sequencer
// accel_seq.sv as the core. A thin wrapper, meant to be re-wired as accel_seq grows; it adds no state
// but the run flag, the image loop (index, count) and the status word.
//
// Schedule of one run (ap_ctrl_hs, as the HLS top's `for (b = 0; b < n_images; b++) backbone(...)`):
//   host writes the arguments, then ap_start (0x00 bit 0)
//   -> cycle 0: ap_start && !running: running <= 1, ap_idle falls, the image count n_images is latched,
//      status cleared, image b = 0; with n_images = 0 nothing runs and ap_done comes the next cycle (the
//      HLS loop runs no iteration); otherwise accel_seq start (one pulse) in this same cycle.
//      accel_seq fetches program.bin's header from  weights + PROG_OFF  (the program rides in the weights
//      buffer: mtl_moe.rtl.program_offset, recorded in export.json), then each step's record, and runs
//      its steps with w_base = weights, task_id = task (the task register alone switches the task), the
//      image reader at  images + b * IMG_BYTES  and the features writer at code  b * N_OUT  of the
//      features buffer (kernels.h read_image / write_features of batch entry b; regmap.json's buffers);
//   -> accel_seq done (one pulse) of image b < n_images - 1 without an error: b <= b + 1 and accel_seq
//      start in that same cycle (it is idle again, so the restart costs no cycle: the next image's
//      header fetch begins at once; what each image repeats is the program fetch, header and records);
//   -> accel_seq done of the last image, or of any image with an error (the run stops there): ap_done =
//      ap_ready = 1 for that cycle (the control block latches done until 0x00 is read, raises the
//      interrupt if enabled, and drops ap_start unless auto_restart), running <= 0, ap_idle rises.
// A start while running is ignored (ap_start stays set; the run in flight is not restarted).
//
// Status (read-only, regmap.json "status", past the HLS IP's registers; cleared by ap_start): bit 0
// (status_bits.error) accel_seq's error flag at an image's done: program.bin's header is not an mtl-moe
// program of this version, or a program / weight / image / feature transfer got a non-OKAY response;
// bit 1 (status_bits.unsupported_step) a record whose op the RTL does not run (the sequencer's step_req:
// answered at once, its outputs not written). Either stops the run after that image. Bit 2
// (status_bits.unaligned_images): n_images > 1 while IMG_BYTES is not whole AXI words, so image 1 would
// start mid-word, where the image reader cannot (kernels.h can): nothing runs, ap_done the next cycle.
// Bit 3 (status_bits.bad_task): the task register >= N_TASKS (as an unsigned word: a negative int too),
// as the HLS top's `if (task < 0 || task >= N_TASKS) return;`: nothing runs, no memory access, ap_done
// the next cycle. The driver reads the word after done and raises one line naming the bits
// (mtl_moe.deploy.protocol.check_status).
//
// Memory: accel_seq's three read masters (ARB_MASTERS of mtl_moe.rtl: the program, the linear engine's
// weights, LayerNorm's gamma / beta) share m_axi_gmem_w through axi_rd_arbiter.sv (round robin, the
// master's index in the top bits of ARID, so gmem_w's ID is GW_ID bits wide, not the HLS IP's 1).
// Two weight ports (WPORTS = 2, the export's weight_ports): the linear engine's second master (plane 1
// of every tile, linear_engine.sv) is m_axi_gmem_w1, the HLS IP's gmem_w1 bundle, alone on it (1-bit
// ID, as the HLS IP's). accel_seq addresses it in the weights buffer's space (w_base = weights); the top
// rebases each address onto the weights1 register, ARADDR = weights1 + (address - weights), as the HLS
// top's weights1 pointer is its own (the driver passes the same buffer twice; a host that points it at
// a copy has plane 1 read there). With one port gmem_w1's outputs are tied off and its inputs unused:
// the IP packaging (bitstreams/rtl_ip.py) leaves the interface out, as the HLS IP has no gmem_w1 then.
//
// The image: accel_seq's image reader on gmem_io's read channel (the images register); the features:
// accel_seq's write_features step (accel_wfeat.sv) on gmem_io's write channels (AW/W/B) at the
// features register, in kernels.h's DDR layout, the run's done after the last write response. So a
// run reads the image, computes the whole backbone on chip and leaves the features in DDR, as the HLS
// top does for each of the n_images images. A step the sequencer does not run (step_req) is answered
// at once and flagged in status.
module accel_top #(
    parameter int CTRL_ADDR_W = 7,     // AXI-Lite address width (regmap addr_width)
    parameter int OFF_WEIGHTS = 'h10,  // argument offsets (regmap args)
    parameter int OFF_WEIGHTS1 = 'h1c,
    parameter int OFF_IMAGES = 'h28,
    parameter int OFF_FEATURES = 'h34,
    parameter int OFF_TASK = 'h40,
    parameter int OFF_N_IMAGES = 'h48,
    parameter int OFF_STATUS = 'h50,   // the read-only status word (regmap status)
    parameter int ST_ERROR = 1,        // its bits (regmap status_bits)
    parameter int ST_UNSUPPORTED = 2,
    parameter int ST_UNALIGNED = 4,
    parameter int ST_BAD_TASK = 8,
    parameter int N_TASKS = 5,         // tasks of the export (its config): task >= N_TASKS runs nothing
    parameter int IMG_BYTES = 6144,    // bytes of one image in the images buffer (regmap buffers.image)
    parameter int N_OUT = 4096,        // feature codes of one image (regmap buffers: features / features_elem)
    parameter longint PRED_BYTES = 0,  // one image's prediction with the heads (regmap buffers.prediction)
    parameter int PROG_OFF = 4096,     // program.bin's offset in the weights buffer (export.json)
    parameter int N_RD = 3,            // read masters on gmem_w (len(mtl_moe.rtl.ARB_MASTERS))
    // accel_seq's (mtl_moe.rtl.accel_seq_parameters), passed through unchanged
    parameter int T_IN = 16,
    parameter int T_OUT = 16,
    parameter int WA = 32,
    parameter int WW = 16,
    parameter int WSB = 16,
    parameter int WACC = 58,
    parameter int PACK2 = 0,
    parameter int PACK_SHIFT = 18,
    parameter int AXI_BITS = 256,
    parameter int TILE_BEATS = 16,
    parameter int TILE_BYTES = 512,
    parameter int WPORTS = 1,          // weight masters: gmem_w (1), or gmem_w + gmem_w1 (2)
    parameter int ROWS_MAX = 256,
    parameter int KT_MAX = 64,
    parameter int NT_MAX = 64,
    parameter int NBUF = 2,
    parameter int BSB = 32,
    parameter int BW = 32,
    parameter int B_SHIFT = -14,
    parameter int B_ROUND = 2,
    parameter int ACC_SHIFT = 0,
    parameter int OW = 32,
    parameter int O_SHIFT = 14,
    parameter int O_ROUND = 0,
    parameter int O_SAT = 0,
    parameter int LOW = 32,
    parameter int L_SHIFT = 14,
    parameter int L_ROUND = 0,
    parameter int L_SAT = 0,
    parameter int IN_DF = 0,
    parameter int D_WORDS = 260,
    parameter int QKV_WORDS = 780,
    parameter int HID_WORDS = 1040,
    parameter int IMG_WORDS = 192,
    parameter int ID_NONE = 0,
    parameter int ID_IMG = 1,
    parameter int RWN = 1,
    parameter int ID_X = 2,
    parameter int ID_H = 3,
    parameter int ID_O = 4,
    parameter int ID_F = 5,
    parameter int ID_QKV = 6,
    parameter int ID_HID = 7,
    parameter int ID_LOGITS = 8,
    parameter int ID_SUM = 10,
    parameter int STEP_WORDS = 16,
    parameter int MAGIC = 32'h504C544D,
    parameter int VERSION = 1,
    parameter int OP_LINEAR = 3,
    parameter int OP_LAYERNORM = 5,
    parameter int OP_GELU = 11,
    parameter int OP_RESIDUAL = 8,
    parameter int OP_ROUTER_TOPK = 10,
    parameter int OP_EXPERT_COMBINE = 13,
    parameter int OP_ATTN_QK_SOFTMAX = 6,
    parameter int OP_READ_IMAGE = 1,
    parameter int OP_IM2COL = 2,
    parameter int OP_EMBED = 4,
    parameter int OP_ATTN_AV = 7,
    parameter int OP_WRITE_FEATURES = 12,
    parameter int NO_OFFSET = -1,
    parameter int ROWS_QUEUE = -1,
    parameter int F_OPCODE = 0,
    parameter int F_ROWS = 2,
    parameter int F_N = 4,
    parameter int F_SRC = 5,
    parameter int F_DST = 6,
    parameter int F_FLAGS = 14,
    parameter int FL_IN_INPUT = 1,
    parameter int FL_GATHER = 16,
    parameter int F_W_OFF = 7,
    parameter int F_W_TASK_STRIDE = 8,
    parameter int F_B_OFF = 9,
    parameter int F_B_TASK_STRIDE = 10,
    parameter int F_N_TILES = 11,
    parameter int F_K_TILES = 12,
    parameter int F_EXPERT = 13,
    parameter int LN_D = 64,
    parameter int LN_L = 8,
    parameter int LN_W = 32,
    parameter int LN_F = 22,
    parameter int LN_A_ROUND = 0,
    parameter int LN_A_SAT = 0,
    parameter int LN_BW = 32,
    parameter int LN_BF = 22,
    parameter int LN_SW = 48,
    parameter int LN_SF = 32,
    parameter int LN_S_SAT = 0,
    parameter int LN_EPS = 1,
    parameter int LN_RW = 32,
    parameter int LN_RF = 21,
    parameter int LN_R_SIGNED = 0,
    parameter int LN_R_ROUND = 1,
    parameter int LN_R_SAT = 0,
    parameter int LN_N = 97,
    parameter int LN_STEP = 5,
    parameter int LN_EW = 18,
    parameter int LN_EF = 17,
    parameter LN_TABLE = "rsqrt_table.mem",
    parameter int GE_W = 32,
    parameter int GE_F = 22,
    parameter int GE_OUT_ROUND = 0,
    parameter int GE_OUT_SAT = 0,
    parameter int GE_N = 177,
    parameter int GE_STEP = 5,
    parameter int GE_EW = 18,
    parameter int GE_EF = 18,
    parameter GE_TABLE = "gelu_table.mem",
    parameter int AD_SAT = 0,
    parameter int RT_E = 8,
    parameter int RT_K = 2,
    parameter int RT_LW = 32,
    parameter int RT_LFB = 22,
    parameter int RT_EW = 18,
    parameter int RT_EF = 17,
    parameter int RT_E_ROUND = 1,
    parameter int RT_E_SAT = 0,
    parameter int RT_SW = 32,
    parameter int RT_SF = 20,
    parameter int RT_S_ROUND = 0,
    parameter int RT_S_SAT = 0,
    parameter int RT_RW = 24,
    parameter int RT_RF = 23,
    parameter int RT_R_ROUND = 1,
    parameter int RT_R_SAT = 0,
    parameter int RT_GW = 18,
    parameter int RT_GF = 17,
    parameter int RT_G_ROUND = 1,
    parameter int RT_G_SAT = 0,
    parameter int RT_LGW = 18,
    parameter int RT_LGF = 17,
    parameter int RT_LOG2E = 189097,
    parameter int RT_EN = 65,
    parameter int RT_ESTEP = 6,
    parameter int RT_ETW = 18,
    parameter int RT_ETF = 17,
    parameter int RT_RN = 65,
    parameter int RT_RSTEP = 6,
    parameter int RT_RTW = 18,
    parameter int RT_RTF = 17,
    parameter int RT_RK = 26,
    parameter RT_ETABLE = "softmax_exp.mem",
    parameter RT_RTABLE = "softmax_recip.mem",
    parameter int RT_STAGES = 7,
    parameter int RT_IW = (RT_E > 1) ? $clog2(RT_E) : 1,
    parameter int AT_T = 65,
    parameter int AT_HD = 32,
    parameter int AT_NH = 2,
    parameter int AT_P = 4,
    parameter int AT_LANES = 8,
    parameter int AT_W = 32,
    parameter int AT_F = 22,
    parameter int AT_A_ROUND = 0,
    parameter int AT_A_SAT = 0,
    parameter int AT_DOTW = 64,
    parameter int AT_AVW = 57,
    parameter int AT_SC_ROUND = 0,
    parameter int AT_SC_SAT = 0,
    parameter int AT_SM_W = 32,
    parameter int AT_SM_F = 22,
    parameter int AT_SM_EW = 18,
    parameter int AT_SM_EF = 17,
    parameter int AT_SM_E_ROUND = 1,
    parameter int AT_SM_E_SAT = 0,
    parameter int AT_SM_SW = 32,
    parameter int AT_SM_SF = 20,
    parameter int AT_SM_S_ROUND = 0,
    parameter int AT_SM_S_SAT = 0,
    parameter int AT_SM_RW = 24,
    parameter int AT_SM_RF = 23,
    parameter int AT_SM_R_ROUND = 1,
    parameter int AT_SM_R_SAT = 0,
    parameter int AT_SM_LW = 18,
    parameter int AT_SM_LF = 17,
    parameter int AT_SM_LOG2E = 189097,
    parameter int AT_SM_EN = 65,
    parameter int AT_SM_ESTEP = 6,
    parameter int AT_SM_ETW = 18,
    parameter int AT_SM_ETF = 17,
    parameter int AT_SM_RN = 65,
    parameter int AT_SM_RSTEP = 6,
    parameter int AT_SM_RTW = 18,
    parameter int AT_SM_RTF = 17,
    parameter int AT_SM_RK = 26,
    parameter AT_SM_ETABLE = "softmax_exp.mem",
    parameter AT_SM_RTABLE = "softmax_recip.mem",
    parameter int IM_SB = 32,
    parameter int IM_WI = 32,
    parameter int IM_C = 3,
    parameter int IM_IMG_H = 32,
    parameter int IM_IMG_W = 32,
    parameter int IM_PATCH = 4,
    parameter int IM_BURST = 128,
    parameter int EM_T = 65,
    parameter int EM_D = 64,
    parameter int EM_FA_ACT = 22,
    parameter int EM_A_ROUND = 0,
    parameter int EM_A_SAT = 0,
    parameter int EM_BSB = 32,
    parameter int EM_BW = 32,
    parameter int EM_FB = 22,
    parameter int EM_BURST = 128,
    parameter int CB_A_ROUND = 0,
    parameter int CB_SUMW = 34,
    parameter int CB_D = 64,
    parameter int WF_SB = 32,
    parameter int WF_CLS = 1,
    parameter int WF_BURST = 128,
    parameter int WF_OUTSTANDING = 2,
    // the task heads (HEADS = 1: mtl_moe.rtl_heads.heads_parameters, prefixed HD_; accel_heads.sv)
    parameter int HEADS = 0,
    parameter int OP_HEAD_STORE_GRID = 14,
    parameter int OP_HEAD_CONV = 15,
    parameter int OP_HEAD_UPSAMPLE = 16,
    parameter int F_LAYER = 1,
    parameter int HD_SB = 32,
    parameter int HD_G = 8,
    parameter int HD_BURST = 128,
    parameter int HD_RD_OUTSTANDING = 2,
    parameter int HD_WR_OUTSTANDING = 2,
    parameter int HD_A_ROUND = 0,
    parameter int HD_RESIZE_LFH = 1,
    parameter int HD_RESIZE_LFW = 1,
    parameter int HD_N_OPS = 1,
    parameter int HD_N_TASKS = 1,
    parameter logic [HD_N_OPS*16-1:0] HD_P_KIND = '0,
    parameter logic [HD_N_OPS*16-1:0] HD_P_K = '0,
    parameter logic [HD_N_OPS*16-1:0] HD_P_RELU = '0,
    parameter logic [HD_N_OPS*16-1:0] HD_P_BAND = '0,
    parameter logic [HD_N_OPS*16-1:0] HD_P_CIN = '0,
    parameter logic [HD_N_OPS*16-1:0] HD_P_COUT = '0,
    parameter logic [HD_N_OPS*16-1:0] HD_P_H = '0,
    parameter logic [HD_N_OPS*16-1:0] HD_P_W = '0,
    parameter logic [HD_N_OPS*16-1:0] HD_P_LFH = '0,
    parameter logic [HD_N_OPS*16-1:0] HD_P_LFW = '0,
    parameter logic [HD_N_OPS*16-1:0] HD_P_SRC = '0,
    parameter logic [HD_N_OPS*16-1:0] HD_P_DST = '0,
    parameter logic [HD_N_TASKS*16-1:0] HD_OUT_CH = '0,
    parameter logic [HD_N_TASKS*HD_N_OPS*32-1:0] HD_OFF_HEAD_W = '0,
    parameter logic [HD_N_TASKS*HD_N_OPS*32-1:0] HD_OFF_HEAD_B = '0,
    parameter int HD_GRID_C = 64,
    parameter int HD_GRID_H = 8,
    parameter int HD_GRID_W = 8,
    parameter int HD_GRID_FIRST = 1,
    parameter int HD_D_WORDS = 4,
    parameter longint HD_SCRATCH_BYTES = 4096,
    localparam int GW_ID = 1 + (N_RD > 1 ? $clog2(N_RD) : 1)  // gmem_w's ID: {master index, master's ID}
) (
    input  logic ap_clk,
    input  logic ap_rst_n,
    /* verilator lint_off SYMRSVDWORD */  // 'interrupt' is the Vitis HLS IP's port name
    output logic interrupt,
    /* verilator lint_on SYMRSVDWORD */
    // AXI-Lite control slave
    input  logic [CTRL_ADDR_W-1:0] s_axi_control_AWADDR,
    input  logic s_axi_control_AWVALID,
    output logic s_axi_control_AWREADY,
    input  logic [31:0] s_axi_control_WDATA,
    input  logic [3:0] s_axi_control_WSTRB,
    input  logic s_axi_control_WVALID,
    output logic s_axi_control_WREADY,
    output logic [1:0] s_axi_control_BRESP,
    output logic s_axi_control_BVALID,
    input  logic s_axi_control_BREADY,
    input  logic [CTRL_ADDR_W-1:0] s_axi_control_ARADDR,
    input  logic s_axi_control_ARVALID,
    output logic s_axi_control_ARREADY,
    output logic [31:0] s_axi_control_RDATA,
    output logic [1:0] s_axi_control_RRESP,
    output logic s_axi_control_RVALID,
    input  logic s_axi_control_RREADY,
    // AXI4 master gmem_w (read channels only)
    output logic [GW_ID-1:0] m_axi_gmem_w_ARID,
    output logic [63:0] m_axi_gmem_w_ARADDR,
    output logic [7:0] m_axi_gmem_w_ARLEN,
    output logic [2:0] m_axi_gmem_w_ARSIZE,
    output logic [1:0] m_axi_gmem_w_ARBURST,
    output logic m_axi_gmem_w_ARLOCK,
    output logic [3:0] m_axi_gmem_w_ARCACHE,
    output logic [2:0] m_axi_gmem_w_ARPROT,
    output logic m_axi_gmem_w_ARVALID,
    input  logic m_axi_gmem_w_ARREADY,
    input  logic [GW_ID-1:0] m_axi_gmem_w_RID,
    input  logic [AXI_BITS-1:0] m_axi_gmem_w_RDATA,
    input  logic [1:0] m_axi_gmem_w_RRESP,
    input  logic m_axi_gmem_w_RLAST,
    input  logic m_axi_gmem_w_RVALID,
    output logic m_axi_gmem_w_RREADY,
    // AXI4 master gmem_w1 (read channels only): plane 1 of the weight tiles, WPORTS = 2 (tied off with 1)
    output logic [0:0] m_axi_gmem_w1_ARID,
    output logic [63:0] m_axi_gmem_w1_ARADDR,
    output logic [7:0] m_axi_gmem_w1_ARLEN,
    output logic [2:0] m_axi_gmem_w1_ARSIZE,
    output logic [1:0] m_axi_gmem_w1_ARBURST,
    output logic m_axi_gmem_w1_ARLOCK,
    output logic [3:0] m_axi_gmem_w1_ARCACHE,
    output logic [2:0] m_axi_gmem_w1_ARPROT,
    output logic m_axi_gmem_w1_ARVALID,
    input  logic m_axi_gmem_w1_ARREADY,
    input  logic [0:0] m_axi_gmem_w1_RID,
    input  logic [AXI_BITS-1:0] m_axi_gmem_w1_RDATA,
    input  logic [1:0] m_axi_gmem_w1_RRESP,
    input  logic m_axi_gmem_w1_RLAST,
    input  logic m_axi_gmem_w1_RVALID,
    output logic m_axi_gmem_w1_RREADY,
    // AXI4 master gmem_io
    output logic [0:0] m_axi_gmem_io_AWID,
    output logic [63:0] m_axi_gmem_io_AWADDR,
    output logic [7:0] m_axi_gmem_io_AWLEN,
    output logic [2:0] m_axi_gmem_io_AWSIZE,
    output logic [1:0] m_axi_gmem_io_AWBURST,
    output logic m_axi_gmem_io_AWLOCK,
    output logic [3:0] m_axi_gmem_io_AWCACHE,
    output logic [2:0] m_axi_gmem_io_AWPROT,
    output logic m_axi_gmem_io_AWVALID,
    input  logic m_axi_gmem_io_AWREADY,
    output logic [AXI_BITS-1:0] m_axi_gmem_io_WDATA,
    output logic [AXI_BITS/8-1:0] m_axi_gmem_io_WSTRB,
    output logic m_axi_gmem_io_WLAST,
    output logic m_axi_gmem_io_WVALID,
    input  logic m_axi_gmem_io_WREADY,
    input  logic [0:0] m_axi_gmem_io_BID,
    input  logic [1:0] m_axi_gmem_io_BRESP,
    input  logic m_axi_gmem_io_BVALID,
    output logic m_axi_gmem_io_BREADY,
    output logic [0:0] m_axi_gmem_io_ARID,
    output logic [63:0] m_axi_gmem_io_ARADDR,
    output logic [7:0] m_axi_gmem_io_ARLEN,
    output logic [2:0] m_axi_gmem_io_ARSIZE,
    output logic [1:0] m_axi_gmem_io_ARBURST,
    output logic m_axi_gmem_io_ARLOCK,
    output logic [3:0] m_axi_gmem_io_ARCACHE,
    output logic [2:0] m_axi_gmem_io_ARPROT,
    output logic m_axi_gmem_io_ARVALID,
    input  logic m_axi_gmem_io_ARREADY,
    input  logic [0:0] m_axi_gmem_io_RID,
    input  logic [AXI_BITS-1:0] m_axi_gmem_io_RDATA,
    input  logic [1:0] m_axi_gmem_io_RRESP,
    input  logic m_axi_gmem_io_RLAST,
    input  logic m_axi_gmem_io_RVALID,
    output logic m_axi_gmem_io_RREADY
);
    wire rst = !ap_rst_n;

    // ---------------- AXI-Lite control block (ap_ctrl_hs): axi_lite_ctrl.sv ----------------
    logic ap_start, ap_done, ap_idle, ap_ready;
    logic [63:0] arg_weights;
    /* verilator lint_off UNUSEDSIGNAL */  // weights1: read with two weight ports only (WPORTS = 2)
    logic [63:0] arg_weights1;
    /* verilator lint_on UNUSEDSIGNAL */
    logic [31:0] arg_task, arg_n_images, status;
    logic [63:0] arg_images, arg_features;
    axi_lite_ctrl #(.CTRL_ADDR_W(CTRL_ADDR_W), .OFF_WEIGHTS(OFF_WEIGHTS), .OFF_WEIGHTS1(OFF_WEIGHTS1),
                    .OFF_IMAGES(OFF_IMAGES), .OFF_FEATURES(OFF_FEATURES), .OFF_TASK(OFF_TASK),
                    .OFF_N_IMAGES(OFF_N_IMAGES), .OFF_STATUS(OFF_STATUS)) ctrl (
        .ap_clk, .ap_rst_n, .s_axi_control_AWADDR, .s_axi_control_AWVALID, .s_axi_control_AWREADY,
        .s_axi_control_WDATA, .s_axi_control_WSTRB, .s_axi_control_WVALID, .s_axi_control_WREADY,
        .s_axi_control_BRESP, .s_axi_control_BVALID, .s_axi_control_BREADY, .s_axi_control_ARADDR,
        .s_axi_control_ARVALID, .s_axi_control_ARREADY, .s_axi_control_RDATA, .s_axi_control_RRESP,
        .s_axi_control_RVALID, .s_axi_control_RREADY, .ap_start, .ap_done, .ap_idle, .ap_ready, .interrupt,
        .arg_weights, .arg_weights1, .arg_images, .arg_features, .arg_task, .arg_n_images, .status);

    // ---------------- ap_ctrl_hs <-> accel_seq: n_images runs of the program ----------------
    logic running, empty, seq_done, seq_busy, seq_error, step_req;
    logic [31:0] img_b, img_n;  // the image running, the images of this run (n_images at ap_start)
    wire run_start = ap_start && !running;
    localparam bit IMG_WHOLE_WORDS = IMG_BYTES % (AXI_BITS / 8) == 0;
    wire unaligned = arg_n_images > 1 && !IMG_WHOLE_WORDS;  // image b > 0 would start mid-word
    wire bad_task = arg_task >= 32'(N_TASKS);                // no task of the export: nothing runs
    wire img_bad = seq_error || step_req || (status & 32'(ST_UNSUPPORTED)) != 0;  // this image's faults
    wire restart = running && seq_done && !img_bad && img_b + 1 < img_n;
    wire seq_start = (run_start && arg_n_images != 0 && !unaligned && !bad_task) || restart;
    wire run_done = running && (empty || (seq_done && !restart));
    always_ff @(posedge ap_clk) begin
        if (rst) begin
            running <= 1'b0;
            empty <= 1'b0;
            status <= '0;
            img_b <= '0;
            img_n <= '0;
        end else begin
            if (run_start) begin
                running <= 1'b1;
                empty <= arg_n_images == 0 || unaligned || bad_task;  // nothing to run: done the next cycle
                status <= (unaligned ? 32'(ST_UNALIGNED) : '0) | (bad_task ? 32'(ST_BAD_TASK) : '0);
                img_b <= '0;
                img_n <= arg_n_images;
            end else begin
                if (restart) img_b <= img_b + 1;
                if (run_done) running <= 1'b0;
                if (running && seq_done && seq_error) status <= status | 32'(ST_ERROR);
                if (step_req) status <= status | 32'(ST_UNSUPPORTED);
            end
        end
    end
    assign ap_idle = !running;
    assign ap_done = run_done;
    assign ap_ready = run_done;
    // image b: its input codes at images + b * IMG_BYTES, its features from code b * N_OUT on
    wire [63:0] img_addr = arg_images + 64'(img_b) * 64'(IMG_BYTES);
    wire [31:0] feat_code0 = img_b * 32'(N_OUT);
    // with the heads (HEADS = 1; kernels.h heads): the output buffer holds the n_images predictions,
    // image b's at b * PRED_BYTES, then the two scratch maps
    wire [63:0] pred_base = arg_features + 64'(img_b) * 64'(PRED_BYTES);
    wire [63:0] scratch_base = arg_features + 64'(img_n) * 64'(PRED_BYTES);

    // the sequencer's three read masters, packed for the arbiter (index order = ARB_MASTERS)
    logic [N_RD-1:0] a_arid, a_rid;
    logic [N_RD*64-1:0] a_araddr;
    logic [N_RD*8-1:0] a_arlen;
    logic [N_RD*3-1:0] a_arsize;
    logic [N_RD*2-1:0] a_arburst, a_rresp;
    logic [N_RD-1:0] a_arvalid, a_arready, a_rlast, a_rvalid, a_rready;
    logic [N_RD*AXI_BITS-1:0] a_rdata;

    /* verilator lint_off UNUSEDSIGNAL */  // the bench's outputs of the sequencer, unused on the board
    logic [31:0] step_rows, step_index, step_cycles, step_ovf, run_cycles, bench_cycles;
    logic step_done, step_skip, step_held, rt_out_valid, rt_out_ovf;
    logic [15:0] rt_out_token;
    logic [RT_K*RT_IW-1:0] rt_out_idx;
    logic [RT_K*RT_GW-1:0] rt_out_gate;
    logic [T_IN*WA-1:0] dbg_rdata;
    logic [T_IN-1:0] dbg_sum_ovf;
    /* verilator lint_on UNUSEDSIGNAL */

    initial if (WPORTS != 1 && WPORTS != 2)
        $error("accel_top: WPORTS = %0d weight ports; the top has gmem_w and gmem_w1 (1 or 2)", WPORTS);
    // the engine's second weight master (plane 1), in the weights buffer's address space
    logic [0:0] w1_arid, w1_rid;
    logic [63:0] w1_araddr;
    logic [7:0] w1_arlen;
    logic [2:0] w1_arsize;
    logic [1:0] w1_arburst, w1_rresp;
    logic w1_arvalid, w1_arready, w1_rlast, w1_rvalid, w1_rready;
    logic [AXI_BITS-1:0] w1_rdata;
    accel_seq #(
        .T_IN(T_IN), .T_OUT(T_OUT), .WA(WA), .WW(WW), .WSB(WSB), .WACC(WACC), .PACK2(PACK2),
        .PACK_SHIFT(PACK_SHIFT), .AXI_BITS(AXI_BITS), .TILE_BEATS(TILE_BEATS), .TILE_BYTES(TILE_BYTES), .WPORTS(WPORTS),
        .ROWS_MAX(ROWS_MAX), .KT_MAX(KT_MAX), .NT_MAX(NT_MAX), .NBUF(NBUF), .BSB(BSB), .BW(BW),
        .B_SHIFT(B_SHIFT), .B_ROUND(B_ROUND), .ACC_SHIFT(ACC_SHIFT), .OW(OW), .O_SHIFT(O_SHIFT),
        .O_ROUND(O_ROUND), .O_SAT(O_SAT), .LOW(LOW), .L_SHIFT(L_SHIFT), .L_ROUND(L_ROUND), .L_SAT(L_SAT),
        .IN_DF(IN_DF), .D_WORDS(D_WORDS), .QKV_WORDS(QKV_WORDS), .HID_WORDS(HID_WORDS), .IMG_WORDS(IMG_WORDS),
        .ID_NONE(ID_NONE), .ID_IMG(ID_IMG), .RWN(RWN), .ID_X(ID_X), .ID_H(ID_H), .ID_O(ID_O), .ID_F(ID_F), .ID_QKV(ID_QKV),
        .ID_HID(ID_HID), .ID_LOGITS(ID_LOGITS), .ID_SUM(ID_SUM), .STEP_WORDS(STEP_WORDS), .MAGIC(MAGIC),
        .VERSION(VERSION), .OP_LINEAR(OP_LINEAR), .OP_LAYERNORM(OP_LAYERNORM), .OP_GELU(OP_GELU),
        .OP_RESIDUAL(OP_RESIDUAL), .OP_ROUTER_TOPK(OP_ROUTER_TOPK), .OP_EXPERT_COMBINE(OP_EXPERT_COMBINE),
        .OP_ATTN_QK_SOFTMAX(OP_ATTN_QK_SOFTMAX), .OP_READ_IMAGE(OP_READ_IMAGE), .OP_IM2COL(OP_IM2COL),
        .OP_EMBED(OP_EMBED), .OP_ATTN_AV(OP_ATTN_AV), .OP_WRITE_FEATURES(OP_WRITE_FEATURES), .NO_OFFSET(NO_OFFSET), .ROWS_QUEUE(ROWS_QUEUE),
        .F_OPCODE(F_OPCODE), .F_ROWS(F_ROWS), .F_N(F_N), .F_SRC(F_SRC), .F_DST(F_DST), .F_FLAGS(F_FLAGS),
        .FL_IN_INPUT(FL_IN_INPUT), .FL_GATHER(FL_GATHER), .F_W_OFF(F_W_OFF), .F_W_TASK_STRIDE(F_W_TASK_STRIDE),
        .F_B_OFF(F_B_OFF), .F_B_TASK_STRIDE(F_B_TASK_STRIDE), .F_N_TILES(F_N_TILES), .F_K_TILES(F_K_TILES),
        .F_EXPERT(F_EXPERT), .LN_D(LN_D), .LN_L(LN_L), .LN_W(LN_W), .LN_F(LN_F), .LN_A_ROUND(LN_A_ROUND),
        .LN_A_SAT(LN_A_SAT), .LN_BW(LN_BW), .LN_BF(LN_BF), .LN_SW(LN_SW), .LN_SF(LN_SF), .LN_S_SAT(LN_S_SAT),
        .LN_EPS(LN_EPS), .LN_RW(LN_RW), .LN_RF(LN_RF), .LN_R_SIGNED(LN_R_SIGNED), .LN_R_ROUND(LN_R_ROUND),
        .LN_R_SAT(LN_R_SAT), .LN_N(LN_N), .LN_STEP(LN_STEP), .LN_EW(LN_EW), .LN_EF(LN_EF), .LN_TABLE(LN_TABLE),
        .GE_W(GE_W), .GE_F(GE_F), .GE_OUT_ROUND(GE_OUT_ROUND), .GE_OUT_SAT(GE_OUT_SAT), .GE_N(GE_N),
        .GE_STEP(GE_STEP), .GE_EW(GE_EW), .GE_EF(GE_EF), .GE_TABLE(GE_TABLE), .AD_SAT(AD_SAT), .RT_E(RT_E),
        .RT_K(RT_K), .RT_LW(RT_LW), .RT_LFB(RT_LFB), .RT_EW(RT_EW), .RT_EF(RT_EF), .RT_E_ROUND(RT_E_ROUND),
        .RT_E_SAT(RT_E_SAT), .RT_SW(RT_SW), .RT_SF(RT_SF), .RT_S_ROUND(RT_S_ROUND), .RT_S_SAT(RT_S_SAT),
        .RT_RW(RT_RW), .RT_RF(RT_RF), .RT_R_ROUND(RT_R_ROUND), .RT_R_SAT(RT_R_SAT), .RT_GW(RT_GW),
        .RT_GF(RT_GF), .RT_G_ROUND(RT_G_ROUND), .RT_G_SAT(RT_G_SAT), .RT_LGW(RT_LGW), .RT_LGF(RT_LGF),
        .RT_LOG2E(RT_LOG2E), .RT_EN(RT_EN), .RT_ESTEP(RT_ESTEP), .RT_ETW(RT_ETW), .RT_ETF(RT_ETF),
        .RT_RN(RT_RN), .RT_RSTEP(RT_RSTEP), .RT_RTW(RT_RTW), .RT_RTF(RT_RTF), .RT_RK(RT_RK),
        .RT_ETABLE(RT_ETABLE), .RT_RTABLE(RT_RTABLE), .RT_STAGES(RT_STAGES), .RT_IW(RT_IW), .AT_T(AT_T),
        .AT_HD(AT_HD), .AT_NH(AT_NH), .AT_P(AT_P), .AT_LANES(AT_LANES), .AT_W(AT_W), .AT_F(AT_F),
        .AT_A_ROUND(AT_A_ROUND), .AT_A_SAT(AT_A_SAT), .AT_DOTW(AT_DOTW), .AT_AVW(AT_AVW),
        .AT_SC_ROUND(AT_SC_ROUND), .AT_SC_SAT(AT_SC_SAT), .AT_SM_W(AT_SM_W), .AT_SM_F(AT_SM_F),
        .AT_SM_EW(AT_SM_EW), .AT_SM_EF(AT_SM_EF), .AT_SM_E_ROUND(AT_SM_E_ROUND), .AT_SM_E_SAT(AT_SM_E_SAT),
        .AT_SM_SW(AT_SM_SW), .AT_SM_SF(AT_SM_SF), .AT_SM_S_ROUND(AT_SM_S_ROUND), .AT_SM_S_SAT(AT_SM_S_SAT),
        .AT_SM_RW(AT_SM_RW), .AT_SM_RF(AT_SM_RF), .AT_SM_R_ROUND(AT_SM_R_ROUND), .AT_SM_R_SAT(AT_SM_R_SAT),
        .AT_SM_LW(AT_SM_LW), .AT_SM_LF(AT_SM_LF), .AT_SM_LOG2E(AT_SM_LOG2E), .AT_SM_EN(AT_SM_EN),
        .AT_SM_ESTEP(AT_SM_ESTEP), .AT_SM_ETW(AT_SM_ETW), .AT_SM_ETF(AT_SM_ETF), .AT_SM_RN(AT_SM_RN),
        .AT_SM_RSTEP(AT_SM_RSTEP), .AT_SM_RTW(AT_SM_RTW), .AT_SM_RTF(AT_SM_RTF), .AT_SM_RK(AT_SM_RK),
        .AT_SM_ETABLE(AT_SM_ETABLE), .AT_SM_RTABLE(AT_SM_RTABLE), .IM_SB(IM_SB), .IM_WI(IM_WI), .IM_C(IM_C),
        .IM_IMG_H(IM_IMG_H), .IM_IMG_W(IM_IMG_W), .IM_PATCH(IM_PATCH), .IM_BURST(IM_BURST), .EM_T(EM_T),
        .EM_D(EM_D), .EM_FA_ACT(EM_FA_ACT), .EM_A_ROUND(EM_A_ROUND), .EM_A_SAT(EM_A_SAT), .EM_BSB(EM_BSB),
        .EM_BW(EM_BW), .EM_FB(EM_FB), .EM_BURST(EM_BURST), .CB_A_ROUND(CB_A_ROUND), .CB_SUMW(CB_SUMW),
        .CB_D(CB_D), .WF_SB(WF_SB), .WF_CLS(WF_CLS), .WF_BURST(WF_BURST), .WF_OUTSTANDING(WF_OUTSTANDING),
        .HEADS(HEADS), .OP_HEAD_STORE_GRID(OP_HEAD_STORE_GRID), .OP_HEAD_CONV(OP_HEAD_CONV),
        .OP_HEAD_UPSAMPLE(OP_HEAD_UPSAMPLE), .F_LAYER(F_LAYER), .HD_SB(HD_SB), .HD_G(HD_G),
        .HD_BURST(HD_BURST), .HD_RD_OUTSTANDING(HD_RD_OUTSTANDING), .HD_WR_OUTSTANDING(HD_WR_OUTSTANDING),
        .HD_A_ROUND(HD_A_ROUND), .HD_RESIZE_LFH(HD_RESIZE_LFH), .HD_RESIZE_LFW(HD_RESIZE_LFW),
        .HD_N_OPS(HD_N_OPS), .HD_N_TASKS(HD_N_TASKS), .HD_P_KIND(HD_P_KIND), .HD_P_K(HD_P_K),
        .HD_P_RELU(HD_P_RELU), .HD_P_BAND(HD_P_BAND), .HD_P_CIN(HD_P_CIN), .HD_P_COUT(HD_P_COUT),
        .HD_P_H(HD_P_H), .HD_P_W(HD_P_W), .HD_P_LFH(HD_P_LFH), .HD_P_LFW(HD_P_LFW), .HD_P_SRC(HD_P_SRC),
        .HD_P_DST(HD_P_DST), .HD_OUT_CH(HD_OUT_CH), .HD_OFF_HEAD_W(HD_OFF_HEAD_W),
        .HD_OFF_HEAD_B(HD_OFF_HEAD_B), .HD_GRID_C(HD_GRID_C), .HD_GRID_H(HD_GRID_H), .HD_GRID_W(HD_GRID_W),
        .HD_GRID_FIRST(HD_GRID_FIRST), .HD_D_WORDS(HD_D_WORDS), .HD_SCRATCH_BYTES(HD_SCRATCH_BYTES)
    ) seq (
        .clk(ap_clk), .rst, .start(seq_start), .prog_addr(arg_weights + 64'(PROG_OFF)), .w_base(arg_weights),
        .img_addr, .task_id(arg_task), .feat_addr(arg_features), .feat_code0, .pred_base, .scratch_base, .pause(1'b0), .busy(seq_busy), .done(seq_done),
        .error(seq_error), .step_req, .step_held, .step_index, .step_rows, .step_go(step_req), .step_done,
        .step_skip, .step_cycles, .step_ovf, .run_cycles, .bench_cycles,
        .dbg_we(1'b0), .dbg_buf('0), .dbg_addr('0), .dbg_wdata('0), .dbg_rdata, .dbg_sum_ovf,
        .rt_out_valid, .rt_out_token, .rt_out_idx, .rt_out_gate, .rt_out_ovf,
        // the image: gmem_io's read channel (the HLS top's images bundle)
        .m_axi_i_ARID(m_axi_gmem_io_ARID), .m_axi_i_ARADDR(m_axi_gmem_io_ARADDR),
        .m_axi_i_ARLEN(m_axi_gmem_io_ARLEN), .m_axi_i_ARSIZE(m_axi_gmem_io_ARSIZE),
        .m_axi_i_ARBURST(m_axi_gmem_io_ARBURST), .m_axi_i_ARVALID(m_axi_gmem_io_ARVALID),
        .m_axi_i_ARREADY(m_axi_gmem_io_ARREADY), .m_axi_i_RID(m_axi_gmem_io_RID),
        .m_axi_i_RLAST(m_axi_gmem_io_RLAST), .m_axi_i_RDATA(m_axi_gmem_io_RDATA),
        .m_axi_i_RRESP(m_axi_gmem_io_RRESP), .m_axi_i_RVALID(m_axi_gmem_io_RVALID),
        .m_axi_i_RREADY(m_axi_gmem_io_RREADY),
        // the features: gmem_io's write channels (the HLS top's features bundle)
        .m_axi_f_AWID(m_axi_gmem_io_AWID), .m_axi_f_AWADDR(m_axi_gmem_io_AWADDR),
        .m_axi_f_AWLEN(m_axi_gmem_io_AWLEN), .m_axi_f_AWSIZE(m_axi_gmem_io_AWSIZE),
        .m_axi_f_AWBURST(m_axi_gmem_io_AWBURST), .m_axi_f_AWVALID(m_axi_gmem_io_AWVALID),
        .m_axi_f_AWREADY(m_axi_gmem_io_AWREADY), .m_axi_f_WDATA(m_axi_gmem_io_WDATA),
        .m_axi_f_WSTRB(m_axi_gmem_io_WSTRB), .m_axi_f_WLAST(m_axi_gmem_io_WLAST),
        .m_axi_f_WVALID(m_axi_gmem_io_WVALID), .m_axi_f_WREADY(m_axi_gmem_io_WREADY),
        .m_axi_f_BID(m_axi_gmem_io_BID), .m_axi_f_BRESP(m_axi_gmem_io_BRESP),
        .m_axi_f_BVALID(m_axi_gmem_io_BVALID), .m_axi_f_BREADY(m_axi_gmem_io_BREADY),
        // master 0: the program; 1: the weights; 2: LayerNorm's parameters
        .m_axi_p_ARID(a_arid[0]), .m_axi_p_ARADDR(a_araddr[0 +: 64]), .m_axi_p_ARLEN(a_arlen[0 +: 8]),
        .m_axi_p_ARSIZE(a_arsize[0 +: 3]), .m_axi_p_ARBURST(a_arburst[0 +: 2]), .m_axi_p_ARVALID(a_arvalid[0]),
        .m_axi_p_ARREADY(a_arready[0]), .m_axi_p_RID(a_rid[0]), .m_axi_p_RLAST(a_rlast[0]),
        .m_axi_p_RDATA(a_rdata[0 +: AXI_BITS]), .m_axi_p_RRESP(a_rresp[0 +: 2]), .m_axi_p_RVALID(a_rvalid[0]),
        .m_axi_p_RREADY(a_rready[0]),
        .m_axi_w_ARID(a_arid[1]), .m_axi_w_ARADDR(a_araddr[64 +: 64]), .m_axi_w_ARLEN(a_arlen[8 +: 8]),
        .m_axi_w_ARSIZE(a_arsize[3 +: 3]), .m_axi_w_ARBURST(a_arburst[2 +: 2]), .m_axi_w_ARVALID(a_arvalid[1]),
        .m_axi_w_ARREADY(a_arready[1]), .m_axi_w_RID(a_rid[1]), .m_axi_w_RLAST(a_rlast[1]),
        .m_axi_w_RDATA(a_rdata[AXI_BITS +: AXI_BITS]), .m_axi_w_RRESP(a_rresp[2 +: 2]),
        .m_axi_w_RVALID(a_rvalid[1]), .m_axi_w_RREADY(a_rready[1]),
        .m_axi_l_ARID(a_arid[2]), .m_axi_l_ARADDR(a_araddr[128 +: 64]), .m_axi_l_ARLEN(a_arlen[16 +: 8]),
        .m_axi_l_ARSIZE(a_arsize[6 +: 3]), .m_axi_l_ARBURST(a_arburst[4 +: 2]), .m_axi_l_ARVALID(a_arvalid[2]),
        .m_axi_l_ARREADY(a_arready[2]), .m_axi_l_RID(a_rid[2]), .m_axi_l_RLAST(a_rlast[2]),
        .m_axi_l_RDATA(a_rdata[2*AXI_BITS +: AXI_BITS]), .m_axi_l_RRESP(a_rresp[4 +: 2]),
        .m_axi_l_RVALID(a_rvalid[2]), .m_axi_l_RREADY(a_rready[2]),
        // the second weight master (plane 1): m_axi_gmem_w1 with two weight ports (below)
        .m_axi_w1_ARID(w1_arid), .m_axi_w1_ARADDR(w1_araddr), .m_axi_w1_ARLEN(w1_arlen),
        .m_axi_w1_ARSIZE(w1_arsize), .m_axi_w1_ARBURST(w1_arburst), .m_axi_w1_ARVALID(w1_arvalid),
        .m_axi_w1_ARREADY(w1_arready), .m_axi_w1_RID(w1_rid), .m_axi_w1_RLAST(w1_rlast),
        .m_axi_w1_RDATA(w1_rdata), .m_axi_w1_RRESP(w1_rresp), .m_axi_w1_RVALID(w1_rvalid),
        .m_axi_w1_RREADY(w1_rready));

    /* verilator lint_off UNUSEDSIGNAL */  // the sequencer's busy: the run flag follows start and done
    wire unused_busy = seq_busy;
    /* verilator lint_on UNUSEDSIGNAL */

    axi_rd_arbiter #(.N(N_RD), .AXI_BITS(AXI_BITS), .ID_W(1)) arb (
        .clk(ap_clk), .rst, .s_ARID(a_arid), .s_ARADDR(a_araddr), .s_ARLEN(a_arlen), .s_ARSIZE(a_arsize),
        .s_ARBURST(a_arburst), .s_ARVALID(a_arvalid), .s_ARREADY(a_arready), .s_RID(a_rid), .s_RDATA(a_rdata),
        .s_RRESP(a_rresp), .s_RLAST(a_rlast), .s_RVALID(a_rvalid), .s_RREADY(a_rready),
        .m_ARID(m_axi_gmem_w_ARID), .m_ARADDR(m_axi_gmem_w_ARADDR), .m_ARLEN(m_axi_gmem_w_ARLEN),
        .m_ARSIZE(m_axi_gmem_w_ARSIZE), .m_ARBURST(m_axi_gmem_w_ARBURST), .m_ARVALID(m_axi_gmem_w_ARVALID),
        .m_ARREADY(m_axi_gmem_w_ARREADY), .m_RID(m_axi_gmem_w_RID), .m_RDATA(m_axi_gmem_w_RDATA),
        .m_RRESP(m_axi_gmem_w_RRESP), .m_RLAST(m_axi_gmem_w_RLAST), .m_RVALID(m_axi_gmem_w_RVALID),
        .m_RREADY(m_axi_gmem_w_RREADY));
    // fixed burst attributes, as the HLS adapters: normal access, modifiable, bufferable
    assign m_axi_gmem_w_ARLOCK = 0, m_axi_gmem_w_ARCACHE = 4'b0011, m_axi_gmem_w_ARPROT = 0;

    // ---------------- gmem_w1: plane 1 of the weight tiles (WPORTS = 2) ----------------
    generate
        if (WPORTS == 2) begin : g_w1
            // rebased onto the weights1 register: the sequencer's address minus weights, plus weights1
            assign m_axi_gmem_w1_ARADDR = arg_weights1 + (w1_araddr - arg_weights);
            assign m_axi_gmem_w1_ARID = w1_arid, m_axi_gmem_w1_ARLEN = w1_arlen, m_axi_gmem_w1_ARSIZE = w1_arsize;
            assign m_axi_gmem_w1_ARBURST = w1_arburst, m_axi_gmem_w1_ARVALID = w1_arvalid;
            assign w1_arready = m_axi_gmem_w1_ARREADY, w1_rid = m_axi_gmem_w1_RID, w1_rdata = m_axi_gmem_w1_RDATA;
            assign w1_rresp = m_axi_gmem_w1_RRESP, w1_rlast = m_axi_gmem_w1_RLAST, w1_rvalid = m_axi_gmem_w1_RVALID;
            assign m_axi_gmem_w1_RREADY = w1_rready;
        end else begin : g_no_w1
            // one weight port: the engine's second master is idle (WPORTS = 1) and gmem_w1 tied off
            assign m_axi_gmem_w1_ARADDR = '0, m_axi_gmem_w1_ARID = '0, m_axi_gmem_w1_ARLEN = '0;
            assign m_axi_gmem_w1_ARSIZE = '0, m_axi_gmem_w1_ARBURST = '0, m_axi_gmem_w1_ARVALID = 1'b0;
            assign m_axi_gmem_w1_RREADY = 1'b0;
            assign w1_arready = 1'b0, w1_rid = '0, w1_rdata = '0, w1_rresp = '0, w1_rlast = 1'b0, w1_rvalid = 1'b0;
            /* verilator lint_off UNUSEDSIGNAL */  // the idle master's outputs, gmem_w1's inputs
            wire unused_w1 = ^{w1_arid, w1_araddr, w1_arlen, w1_arsize, w1_arburst, w1_arvalid, w1_rready,
                               m_axi_gmem_w1_ARREADY, m_axi_gmem_w1_RID, m_axi_gmem_w1_RDATA,
                               m_axi_gmem_w1_RRESP, m_axi_gmem_w1_RLAST, m_axi_gmem_w1_RVALID};
            /* verilator lint_on UNUSEDSIGNAL */
        end
    endgenerate
    assign m_axi_gmem_w1_ARLOCK = 0, m_axi_gmem_w1_ARCACHE = 4'b0011, m_axi_gmem_w1_ARPROT = 0;

    // ---------------- gmem_io: the image reader's read channel, the features writer's write channels ----------------
    // fixed burst attributes, as the HLS adapters: normal access, modifiable, bufferable
    assign m_axi_gmem_io_AWLOCK = 0, m_axi_gmem_io_AWCACHE = 4'b0011, m_axi_gmem_io_AWPROT = 0;
    assign m_axi_gmem_io_ARLOCK = 0, m_axi_gmem_io_ARCACHE = 4'b0011, m_axi_gmem_io_ARPROT = 0;
endmodule
