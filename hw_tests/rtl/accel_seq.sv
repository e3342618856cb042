// The layer-program sequencer: the RTL accelerator's control. It reads program.bin
// (mtl_moe/program.py: a header, then one record of STEP_WORDS little-endian int32 words per step)
// from memory over its own AXI4 read master and runs each step on its unit, the units reading and
// writing the on-chip feature maps (accel_fm.sv: X, H, O, F, QKV, HID as words of T_IN act codes;
// the LOGITS buffer here, one token's E router logits a word) through the ports the step's src / dst
// ids select — no unit holds a private copy and nothing leaves the chip between steps:
//   linear          linear_engine.sv: rows, k_tiles, n_tiles from the record,
//                   w_addr = w_base + w_off + task * w_task_stride (per-task router matrices),
//                   b_addr = w_base + b_off (has_bias = b_off != NO_OFFSET); input row r word kb at
//                   r * k_tiles + kb of src (an expert's first linear, F_GATHER: row r is its queue's
//                   token r, read through the router's queue); output tile nt of row r into dst at
//                   word r * ceil(n / T_IN) + nt * T_OUT / T_IN (lanes past n not written); into
//                   LOGITS in the router_logit format (the engine's second output format), and from an
//                   F_IN_INPUT src (the patch embedding) in the input format;
//   layernorm       accel_ln.sv (gamma at w_base + w_off + task * w_task_stride, beta at w_base + b_off
//                   + task * b_task_stride: decoder pup's final norm is a row per task; over m_axi_l);
//   gelu            accel_gelu.sv over rows x ceil(n / T_IN) words of src, in place;
//   residual        accel_add.sv: dst += src word by word (src SUM: the MoE block's gated sums,
//                   read where accel_combine.sv keeps them);
//   router_topk     accel_router.sv on LOGITS: gates, top-k, the per-expert token queues; an expert
//                   step (rows = ROWS_QUEUE) then runs its queue's length (0: skipped);
//   expert_combine  accel_combine.sv: the gated rows of src (F) into the tokens' sums;
//   read_image      accel_image.sv: the image from img_addr over m_axi_i into img as im2col rows
//                   (the write addressing does im2col: the im2col record after it is passed over);
//   embed           accel_embed.sv: X = [cls; F] + pos, cls / pos from w_base + w_off / b_off over
//                   m_axi_l (LayerNorm's master: the two never run at once);
//   attn_qk_softmax accel_attn.sv: the whole attention core of the block (Q.K^T, softmax, A.V
//                   interleaved by groups of P query rows) from QKV (K/V on port A, Q on port B) into
//                   O; the record after it (attn_av) has no work of its own and is passed over.
//   write_features  accel_wfeat.sv: src's rows past the class token (the final LayerNorm's H) as
//                   (n, rows) codes packed into AXI words (kernels.h write_features' layout) to
//                   feat_addr over m_axi_f, the image's first code at feat_code0; done with the last
//                   write response.
//   head_store_grid, head_conv, head_upsample (HEADS = 1: the export runs the task heads on the
//                   accelerator; the header's word 4 counts these records after the backbone's)
//                   accel_heads.sv, one record a call (grid, pass `layer` of the task's head), DDR ->
//                   DDR over m_axi_i / m_axi_f (the image reader's and the features writer's masters:
//                   never busy at once), the prediction at pred_base, the scratch maps at
//                   scratch_base; the head owns QKV / F / HID / H's RAM ports while it runs
//                   (accel_fm.sv hd_on), except in a conv's linear call: the head's request (eng_*)
//                   runs on the shared linear engine here, HID in, F out (ceil(cout / T_IN) words a
//                   row), the task's weights at the record's table offsets (accel_heads.sv).
// Any other op (none of the backbone's) is the bench's: the sequencer
// raises step_req and waits for step_go, while the bench writes the step's outputs through the debug
// port. With pause set it also holds after every step (step_held) until step_go, so a bench can read
// any buffer between steps; step_cycles is each unit's start -> done, step_ovf the outputs of real
// columns its unit flagged as overflowed (WRAP types). A header that is not an mtl-moe program of
// this version stops the run with error set.
module accel_seq #(
    // linear_engine's parameters (mtl_moe.rtl.linear_engine_parameters)
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
    parameter int WPORTS = 1,           // weight masters: 2 adds m_axi_w1 (plane 1 of every tile)
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
    parameter int LOW = 32,           // the engine's second output format: the router's logits
    parameter int L_SHIFT = 14,
    parameter int L_ROUND = 0,
    parameter int L_SAT = 0,
    parameter int IN_DF = 0,          // the engine's second input format: the patch embedding's input
    // the feature maps (accel_fm.sv; mtl_moe.rtl.accel_seq_parameters from the config and kernels.h)
    parameter int D_WORDS = 260,
    parameter int QKV_WORDS = 780,
    parameter int HID_WORDS = 1040,
    parameter int IMG_WORDS = 192,
    parameter int ID_NONE = 0,          // a port pointed at no buffer
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
    // the program format (mtl_moe.rtl.accel_seq_parameters, from mtl_moe.program)
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
    // word index of each field in a record (mtl_moe.program.STEP_FIELDS)
    parameter int F_OPCODE = 0,
    parameter int F_ROWS = 2,
    parameter int F_N = 4,
    parameter int F_SRC = 5,
    parameter int F_DST = 6,
    parameter int F_FLAGS = 14,
    parameter int FL_IN_INPUT = 1,    // program.F_IN_INPUT
    parameter int FL_GATHER = 16,     // program.F_GATHER
    parameter int F_W_OFF = 7,
    parameter int F_W_TASK_STRIDE = 8,
    parameter int F_B_OFF = 9,
    parameter int F_B_TASK_STRIDE = 10,
    parameter int F_N_TILES = 11,
    parameter int F_K_TILES = 12,
    parameter int F_EXPERT = 13,
    // the LayerNorm unit's (mtl_moe.rtl.layernorm_parameters, prefixed LN_)
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
    // the GELU lanes' (mtl_moe.rtl.gelu_parameters, prefixed GE_; T_IN lanes, one word a cycle)
    parameter int GE_W = 32,
    parameter int GE_F = 22,
    parameter int GE_OUT_ROUND = 0,
    parameter int GE_OUT_SAT = 0,
    parameter int GE_N = 177,
    parameter int GE_STEP = 5,
    parameter int GE_EW = 18,
    parameter int GE_EF = 18,
    parameter GE_TABLE = "gelu_table.mem",
    // the residual add's (act overflow mode)
    parameter int AD_SAT = 0,
    // the router's (mtl_moe.rtl.router_parameters, prefixed RT_; accel_router.sv)
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
    // the attention unit's (mtl_moe.rtl.attn_parameters, prefixed AT_; accel_attn.sv)
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
    // the image reader's (mtl_moe.rtl.image_parameters, prefixed IM_)
    parameter int IM_SB = 32,
    parameter int IM_WI = 32,
    parameter int IM_C = 3,
    parameter int IM_IMG_H = 32,
    parameter int IM_IMG_W = 32,
    parameter int IM_PATCH = 4,
    parameter int IM_BURST = 128,
    // the embedding's (mtl_moe.rtl.embed_parameters, prefixed EM_)
    parameter int EM_T = 65,
    parameter int EM_D = 64,
    parameter int EM_FA_ACT = 22,
    parameter int EM_A_ROUND = 0,
    parameter int EM_A_SAT = 0,
    parameter int EM_BSB = 32,
    parameter int EM_BW = 32,
    parameter int EM_FB = 22,
    parameter int EM_BURST = 128,
    // the combine's (accel_combine.sv): act rounding / overflow, the exact sum's width, n_embd
    parameter int CB_A_ROUND = 0,
    parameter int CB_SUMW = 34,
    parameter int CB_D = 64,
    // the features writer's (mtl_moe.rtl.wfeat_parameters, prefixed WF_; accel_wfeat.sv)
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
    localparam int NMAX0_ = (QKV_WORDS > HID_WORDS) ? QKV_WORDS : HID_WORDS,
    localparam int NMAX_ = (NMAX0_ > IMG_WORDS) ? NMAX0_ : IMG_WORDS,
    localparam int FA = $clog2((NMAX_ > D_WORDS) ? NMAX_ : D_WORDS),  // feature-map word address
    localparam int WB = T_IN * WA,
    localparam int YW = (LOW > OW) ? LOW : OW
) (
    input  logic clk,
    input  logic rst,
    input  logic start,
    input  logic [63:0] prog_addr,    // program.bin, AXI_BITS/8-aligned
    input  logic [63:0] w_base,       // weights.bin
    input  logic [63:0] img_addr,     // the image (the input codes as the host writes them), over m_axi_i
    input  logic [31:0] task_id,
    input  logic [63:0] feat_addr,    // the features buffer, AXI_BITS/8-aligned, over m_axi_f
    input  logic [31:0] feat_code0,   // this image's first feature code in it (b * N_OUT)
    input  logic [63:0] pred_base,    // the heads (HEADS = 1): this image's prediction, the scratch maps
    input  logic [63:0] scratch_base,
    input  logic pause,               // hold after every step until step_go (a bench inspecting buffers)
    output logic busy,
    output logic done,
    output logic error,               // bad header or a read error response (sticky until start)
    // the step handshake: a step the bench plays (step_req), or a held step (step_held)
    output logic step_req,
    output logic step_held,
    output logic [31:0] step_index,
    output logic [31:0] step_rows,    // the record's rows (ROWS_QUEUE: an expert's queue length)
    input  logic step_go,
    output logic step_done,           // pulse: a unit finished this step
    output logic step_skip,           // pulse: a step with no rows (an empty queue) passed over
    output logic [31:0] step_cycles,  // unit start -> done of the step just done
    output logic [31:0] step_ovf,     // outputs of that step flagged as overflowed
    output logic [31:0] run_cycles,   // start -> done of the last run
    output logic [31:0] bench_cycles, // of which waiting for the bench's steps (step_req) or a hold
    // the debug port onto the feature maps (while the sequencer waits: idle, step_req or step_held):
    // dbg_buf's word dbg_addr written with dbg_wdata, or read into dbg_rdata the next cycle
    // (dbg_buf = ID_SUM: the combine's fitted sums, their overflow flags in dbg_sum_ovf)
    input  logic dbg_we,
    input  logic [3:0] dbg_buf,
    input  logic [FA-1:0] dbg_addr,
    input  logic [WB-1:0] dbg_wdata,
    output logic [WB-1:0] dbg_rdata,
    output logic [T_IN-1:0] dbg_sum_ovf,
    // each token's router choices as they leave top-k (accel_router.sv)
    output logic rt_out_valid,
    output logic [15:0] rt_out_token,
    output logic [RT_K*RT_IW-1:0] rt_out_idx,
    output logic [RT_K*RT_GW-1:0] rt_out_gate,
    output logic rt_out_ovf,
    // AXI4 read master: the image (the HLS top's gmem_io bundle)
    output logic [0:0] m_axi_i_ARID,
    output logic [63:0] m_axi_i_ARADDR,
    output logic [7:0] m_axi_i_ARLEN,
    output logic [2:0] m_axi_i_ARSIZE,
    output logic [1:0] m_axi_i_ARBURST,
    output logic m_axi_i_ARVALID,
    input  logic m_axi_i_ARREADY,
    input  logic [0:0] m_axi_i_RID,
    input  logic m_axi_i_RLAST,
    input  logic [AXI_BITS-1:0] m_axi_i_RDATA,
    input  logic [1:0] m_axi_i_RRESP,
    input  logic m_axi_i_RVALID,
    output logic m_axi_i_RREADY,
    // AXI4 read master: LayerNorm's gamma / beta, the embedding's cls / pos (never both at once)
    output logic [0:0] m_axi_l_ARID,
    output logic [63:0] m_axi_l_ARADDR,
    output logic [7:0] m_axi_l_ARLEN,
    output logic [2:0] m_axi_l_ARSIZE,
    output logic [1:0] m_axi_l_ARBURST,
    output logic m_axi_l_ARVALID,
    input  logic m_axi_l_ARREADY,
    input  logic [0:0] m_axi_l_RID,
    input  logic m_axi_l_RLAST,
    input  logic [AXI_BITS-1:0] m_axi_l_RDATA,
    input  logic [1:0] m_axi_l_RRESP,
    input  logic m_axi_l_RVALID,
    output logic m_axi_l_RREADY,
    // AXI4 write master: the features (the HLS top's gmem_io bundle, its write channels)
    output logic [0:0] m_axi_f_AWID,
    output logic [63:0] m_axi_f_AWADDR,
    output logic [7:0] m_axi_f_AWLEN,
    output logic [2:0] m_axi_f_AWSIZE,
    output logic [1:0] m_axi_f_AWBURST,
    output logic m_axi_f_AWVALID,
    input  logic m_axi_f_AWREADY,
    output logic [AXI_BITS-1:0] m_axi_f_WDATA,
    output logic [AXI_BITS/8-1:0] m_axi_f_WSTRB,
    output logic m_axi_f_WLAST,
    output logic m_axi_f_WVALID,
    input  logic m_axi_f_WREADY,
    input  logic [0:0] m_axi_f_BID,
    input  logic [1:0] m_axi_f_BRESP,
    input  logic m_axi_f_BVALID,
    output logic m_axi_f_BREADY,
    // AXI4 read master: the program
    output logic [0:0] m_axi_p_ARID,
    output logic [63:0] m_axi_p_ARADDR,
    output logic [7:0] m_axi_p_ARLEN,
    output logic [2:0] m_axi_p_ARSIZE,
    output logic [1:0] m_axi_p_ARBURST,
    output logic m_axi_p_ARVALID,
    input  logic m_axi_p_ARREADY,
    /* verilator lint_off UNUSEDSIGNAL */  // one ID; the burst length is the fetcher's own count
    input  logic [0:0] m_axi_p_RID,
    input  logic m_axi_p_RLAST,
    /* verilator lint_on UNUSEDSIGNAL */
    input  logic [AXI_BITS-1:0] m_axi_p_RDATA,
    input  logic [1:0] m_axi_p_RRESP,
    input  logic m_axi_p_RVALID,
    output logic m_axi_p_RREADY,
    // AXI4 read master: the weights (the engine's)
    output logic [0:0] m_axi_w_ARID,
    output logic [63:0] m_axi_w_ARADDR,
    output logic [7:0] m_axi_w_ARLEN,
    output logic [2:0] m_axi_w_ARSIZE,
    output logic [1:0] m_axi_w_ARBURST,
    output logic m_axi_w_ARVALID,
    input  logic m_axi_w_ARREADY,
    input  logic [0:0] m_axi_w_RID,
    input  logic m_axi_w_RLAST,
    input  logic [AXI_BITS-1:0] m_axi_w_RDATA,
    input  logic [1:0] m_axi_w_RRESP,
    input  logic m_axi_w_RVALID,
    output logic m_axi_w_RREADY,
    // AXI4 read master: plane 1 of the weight tiles (WPORTS = 2; idle with one port). Its addresses
    // are in the weights buffer's space, as m_axi_w's (the top rebases them onto its own pointer)
    output logic [0:0] m_axi_w1_ARID,
    output logic [63:0] m_axi_w1_ARADDR,
    output logic [7:0] m_axi_w1_ARLEN,
    output logic [2:0] m_axi_w1_ARSIZE,
    output logic [1:0] m_axi_w1_ARBURST,
    output logic m_axi_w1_ARVALID,
    input  logic m_axi_w1_ARREADY,
    input  logic [0:0] m_axi_w1_RID,
    input  logic m_axi_w1_RLAST,
    input  logic [AXI_BITS-1:0] m_axi_w1_RDATA,
    input  logic [1:0] m_axi_w1_RRESP,
    input  logic m_axi_w1_RVALID,
    output logic m_axi_w1_RREADY
);
    localparam int REC_BITS = STEP_WORDS * 32;
    localparam int REC_BEATS = REC_BITS / AXI_BITS;  // beats of one record (the header is one too)
    localparam int BB = REC_BEATS > 1 ? $clog2(REC_BEATS) : 1;
    localparam int RA = $clog2(ROWS_MAX);

    initial begin
        if (REC_BITS % AXI_BITS != 0)
            $error("accel_seq: a %0d-bit program record is not whole %0d-bit AXI words", REC_BITS, AXI_BITS);
        if (RWN * T_IN < T_OUT || (T_OUT > T_IN && T_OUT % T_IN != 0) || (T_OUT < T_IN && T_IN % T_OUT != 0))
            $error("accel_seq: %0d-code output tiles do not tile %0d-code words (a window of %0d)", T_OUT, T_IN, RWN);
        if (CB_D % T_IN != 0)
            $error("accel_seq: n_embd = %0d is not whole %0d-code words", CB_D, T_IN);
    end

    typedef enum logic [2:0] {S_IDLE, S_NEXT, S_DECODE, S_WAIT_GO, S_RUN, S_HOLD} state_t;
    state_t st;
    localparam int PF = 4;                // records fetched ahead (a power of two)
    localparam int PW = $clog2(PF) + 1;
    logic [REC_BITS-1:0] rec;             // the step being run
    logic [REC_BITS-1:0] fifo [PF];       // the records fetched ahead of it
    logic [PW-2:0] f_wr, f_rd;
    logic [PW-1:0] f_cnt, n_out;          // records queued, bursts outstanding
    logic [BB-1:0] beat;
    logic [31:0] fnext, n_prog;           // the next record to ask for; the header's step count
    logic hdr_ok, f_last;
    assign f_last = m_axi_p_RVALID && 32'(beat) == REC_BEATS - 1;
    logic p_err;                          // a program read came back with an error response
    assign p_err = m_axi_p_RVALID && m_axi_p_RRESP != 2'b00;
    logic [31:0] blk, n_steps;            // record being fetched (0: the header), steps in the program
    logic [15:0] e_rows, e_kt, e_nt;
    logic [63:0] e_waddr, e_baddr;
    logic e_bias, e_start, e_done, e_busy, e_err;
    logic [3:0] u_src, u_dst;             // the running step's buffers
    logic [31:0] u_n, u_wpr;              // its output row width and words per output row
    logic u_gather, u_logit, u_input;
    logic is_ln, ln_start, ln_done, is_ge, ge_start, ge_done;
    logic [31:0] ge_words;
    logic is_ad, ad_start, ad_done;
    logic is_rt, rt_start, rt_done;
    logic is_cb, cb_start, cb_done;
    logic is_at, at_start, at_done;
    logic is_im, im_start, im_done, im_err, is_em, em_start, em_done, em_err;
    logic is_wf, wf_start, wf_done, wf_err;
    logic is_hd, hd_start, hd_grid, hd_done, hd_rd_err, hd_wr_err, hd_eng;
    logic [7:0] hd_layer;
    /* verilator lint_off UNUSEDSIGNAL */  // queue rows: bits above the queue depth stay 0
    logic [15:0] q_index, cb_q_index;
    /* verilator lint_on UNUSEDSIGNAL */
    logic [RT_E*16-1:0] q_len;
    logic [15:0] q_rows;                  // an expert step's queue length (the router's, in RTL)
    logic [63:0] ln_g, ln_b;
    logic [31:0] cyc, ovf_n;

    function automatic logic [31:0] field(input logic [REC_BITS-1:0] r, input int i);
        return r[i*32 +: 32];
    endfunction
    function automatic logic is_rtl_op(input logic [31:0] op);
        return op == OP_LINEAR || op == OP_LAYERNORM || op == OP_GELU || op == OP_RESIDUAL
               || op == OP_ROUTER_TOPK || op == OP_EXPERT_COMBINE || op == OP_ATTN_QK_SOFTMAX
               || op == OP_ATTN_AV || op == OP_READ_IMAGE || op == OP_IM2COL || op == OP_EMBED
               || op == OP_WRITE_FEATURES
               || (HEADS != 0 && (op == OP_HEAD_STORE_GRID || op == OP_HEAD_CONV || op == OP_HEAD_UPSAMPLE));
    endfunction
    // the steps a header announces: the backbone's, and (HEADS = 1) the head's after them
    function automatic logic [31:0] hdr_steps(input logic [REC_BITS-1:0] r);
        return field(r, 2) + (HEADS != 0 ? field(r, 4) : 32'd0);
    endfunction

    assign m_axi_p_ARID = '0;
    assign m_axi_p_ARADDR = prog_addr + 64'(fnext) * 64'(REC_BITS / 8);
    assign m_axi_p_ARLEN = 8'(REC_BEATS - 1);
    assign m_axi_p_ARSIZE = 3'($clog2(AXI_BITS / 8));
    assign m_axi_p_ARBURST = 2'b01;
    // ask while the queue has room for every burst outstanding: the header alone, then up to its count
    assign m_axi_p_ARVALID = busy && 32'(f_cnt) + 32'(n_out) < PF
                             && (fnext == 0 ? blk == 0 && !hdr_ok && st == S_NEXT : hdr_ok && fnext <= n_prog);
    assign m_axi_p_RREADY = 1'b1;
    assign step_req = st == S_WAIT_GO;
    assign step_held = st == S_HOLD;
    assign step_index = blk - 1;
    // an expert step runs on its queue: the length the router built (the record says ROWS_QUEUE)
    always_comb begin
        q_rows = '0;
        for (int e = 0; e < RT_E; e++)
            if ($signed(field(rec, F_EXPERT)) == e) q_rows = q_len[e*16 +: 16];
    end
    assign step_rows = $signed(field(rec, F_ROWS)) == ROWS_QUEUE ? 32'(q_rows) : field(rec, F_ROWS);
    assign busy = st != S_IDLE;

    // ---- the step's end: the next record, or a hold --------------------------------------------
    logic last_step;
    assign last_step = blk == n_steps;

    always_ff @(posedge clk) begin
        done <= 1'b0;
        step_done <= 1'b0;
        step_skip <= 1'b0;
        e_start <= 1'b0;
        ln_start <= 1'b0;
        ge_start <= 1'b0;
        ad_start <= 1'b0;
        rt_start <= 1'b0;
        cb_start <= 1'b0;
        at_start <= 1'b0;
        im_start <= 1'b0;
        em_start <= 1'b0;
        wf_start <= 1'b0;
        hd_start <= 1'b0;
        if (rst) begin
            st <= S_IDLE;
            error <= 1'b0;
            is_hd <= 1'b0;  // the io port's owner: the image reader / features writer
        end else begin
          if (p_err) error <= 1'b1;
          case (st)
            S_IDLE: if (start) begin
                blk <= '0;
                error <= 1'b0;
                st <= S_NEXT;
            end
            S_NEXT: if (f_cnt != 0) begin  // the record fetched while the steps before it ran
                rec <= fifo[f_rd];
                st <= S_DECODE;
            end
            S_DECODE: begin
                if (blk == 0) begin  // the header: magic, version, number of steps, words per step
                    n_steps <= hdr_steps(rec);
                    if (error || field(rec, 0) != MAGIC || field(rec, 1) != VERSION
                        || field(rec, 3) != STEP_WORDS) begin
                        error <= 1'b1;
                        done <= 1'b1;
                        st <= S_IDLE;
                    end else if (hdr_steps(rec) == 0) begin
                        done <= 1'b1;
                        st <= S_IDLE;
                    end else begin
                        blk <= 1;
                        st <= S_NEXT;
                    end
                end else if (!is_rtl_op(field(rec, F_OPCODE))) begin
                    st <= S_WAIT_GO;  // the bench's step
                end else if (($signed(field(rec, F_ROWS)) == ROWS_QUEUE && q_rows == 0)
                             || field(rec, F_OPCODE) == OP_ATTN_AV || field(rec, F_OPCODE) == OP_IM2COL) begin
                    step_skip <= 1'b1;  // an expert nobody routed to; A.V (run with Q.K^T); im2col
                    st <= last_step ? S_IDLE : S_NEXT;
                    done <= last_step;
                    blk <= blk + 1;
                end else begin
                    is_rt <= field(rec, F_OPCODE) == OP_ROUTER_TOPK;
                    is_cb <= field(rec, F_OPCODE) == OP_EXPERT_COMBINE;
                    is_ln <= field(rec, F_OPCODE) == OP_LAYERNORM;
                    is_ge <= field(rec, F_OPCODE) == OP_GELU || field(rec, F_OPCODE) == OP_RESIDUAL;
                    is_ad <= field(rec, F_OPCODE) == OP_RESIDUAL;
                    is_at <= field(rec, F_OPCODE) == OP_ATTN_QK_SOFTMAX;
                    is_im <= field(rec, F_OPCODE) == OP_READ_IMAGE;
                    is_em <= field(rec, F_OPCODE) == OP_EMBED;
                    is_wf <= field(rec, F_OPCODE) == OP_WRITE_FEATURES;
                    is_hd <= HEADS != 0 && (field(rec, F_OPCODE) == OP_HEAD_STORE_GRID
                                            || field(rec, F_OPCODE) == OP_HEAD_CONV
                                            || field(rec, F_OPCODE) == OP_HEAD_UPSAMPLE);
                    hd_grid <= field(rec, F_OPCODE) == OP_HEAD_STORE_GRID;
                    hd_layer <= $signed(field(rec, F_LAYER)) < 0 ? 8'd0 : 8'(field(rec, F_LAYER));
                    u_src <= 4'(field(rec, F_SRC));
                    u_dst <= 4'(field(rec, F_DST));
                    u_n <= field(rec, F_N);
                    u_wpr <= (field(rec, F_N) + T_IN - 1) / T_IN;
                    u_gather <= (field(rec, F_FLAGS) & FL_GATHER) != 0;
                    u_input <= (field(rec, F_FLAGS) & FL_IN_INPUT) != 0;
                    u_logit <= field(rec, F_DST) == ID_LOGITS;
                    e_rows <= 16'(step_rows);
                    ge_words <= 32'(step_rows[15:0]) * ((field(rec, F_N) + T_IN - 1) / T_IN);
                    e_kt <= 16'(field(rec, F_K_TILES));
                    e_nt <= 16'(field(rec, F_N_TILES));
                    e_waddr <= w_base + 64'(field(rec, F_W_OFF)) + 64'(task_id) * 64'(field(rec, F_W_TASK_STRIDE));
                    e_baddr <= $signed(field(rec, F_B_OFF)) != NO_OFFSET  // no bias: any aligned address
                               ? w_base + 64'(field(rec, F_B_OFF)) : w_base;
                    e_bias <= $signed(field(rec, F_B_OFF)) != NO_OFFSET;
                    // LayerNorm's gamma / beta (a per-task stack: the task's row), embed's cls / pos
                    ln_g <= w_base + 64'(field(rec, F_W_OFF)) + 64'(task_id) * 64'(field(rec, F_W_TASK_STRIDE));
                    ln_b <= w_base + 64'(field(rec, F_B_OFF)) + 64'(task_id) * 64'(field(rec, F_B_TASK_STRIDE));
                    st <= S_RUN;
                    cyc <= '0;
                    ovf_n <= '0;
                    case (field(rec, F_OPCODE))
                        OP_LINEAR: e_start <= 1'b1;
                        OP_LAYERNORM: ln_start <= 1'b1;
                        OP_GELU: ge_start <= 1'b1;
                        OP_RESIDUAL: ad_start <= 1'b1;
                        OP_ROUTER_TOPK: rt_start <= 1'b1;
                        OP_ATTN_QK_SOFTMAX: at_start <= 1'b1;
                        OP_READ_IMAGE: im_start <= 1'b1;
                        OP_EMBED: em_start <= 1'b1;
                        OP_WRITE_FEATURES: wf_start <= 1'b1;
                        OP_HEAD_STORE_GRID, OP_HEAD_CONV, OP_HEAD_UPSAMPLE: hd_start <= 1'b1;
                        default: cb_start <= 1'b1;
                    endcase
                end
            end
            S_WAIT_GO: if (step_go) begin  // the bench has written the step's outputs
                st <= last_step ? S_IDLE : S_NEXT;
                done <= last_step;
                blk <= blk + 1;
            end
            S_RUN: begin
                cyc <= cyc + 1;
                ovf_n <= ovf_n + flagged;
                if (e_err || im_err || em_err || wf_err || hd_rd_err || hd_wr_err) error <= 1'b1;
                if (is_hd ? hd_done : is_wf ? wf_done : is_im ? im_done : is_em ? em_done : is_at ? at_done : is_cb ? cb_done : is_rt ? rt_done : is_ad ? ad_done : is_ge ? ge_done : is_ln ? ln_done : e_done) begin
                    step_done <= 1'b1;
                    step_cycles <= cyc;
                    step_ovf <= ovf_n + flagged;
                    st <= pause ? S_HOLD : last_step ? S_IDLE : S_NEXT;
                    done <= !pause && last_step;
                    blk <= pause ? blk : blk + 1;
                end
            end
            S_HOLD: if (step_go) begin
                st <= last_step ? S_IDLE : S_NEXT;
                done <= last_step;
                blk <= blk + 1;
            end
            default: st <= S_IDLE;
          endcase
        end
    end

    always_ff @(posedge clk)
        if (st == S_IDLE && start) begin
            run_cycles <= '0;
            bench_cycles <= '0;
        end else if (st != S_IDLE) begin
            run_cycles <= run_cycles + 1;
            if (st == S_WAIT_GO || st == S_HOLD) bench_cycles <= bench_cycles + 1;
        end

    // ---- the fetcher: records run ahead of the steps into a queue of PF, each one INCR burst, up to
    // PF bursts outstanding (data returns in order: one ID), so a run of short steps (a 6-cycle
    // combine, an empty queue's skip) does not wait for memory; only the header's and the first
    // step's fetch latency are exposed. The header is fetched alone: its step count bounds the rest.
    always_ff @(posedge clk) begin
        if (rst) begin
            n_out <= '0;
            f_cnt <= '0;
            hdr_ok <= 1'b0;
        end else if (st == S_IDLE && start) begin
            fnext <= '0;
            n_out <= '0;
            f_cnt <= '0;
            f_wr <= '0;
            f_rd <= '0;
            beat <= '0;
            hdr_ok <= 1'b0;
        end else begin
            if (st == S_DECODE && blk == 0) begin  // the header: the queue now holds no record
                hdr_ok <= !error && field(rec, 0) == MAGIC && field(rec, 1) == VERSION && field(rec, 3) == STEP_WORDS;
                n_prog <= hdr_steps(rec);
            end
            if (m_axi_p_ARVALID && m_axi_p_ARREADY) fnext <= fnext + 1;
            n_out <= n_out + PW'(m_axi_p_ARVALID && m_axi_p_ARREADY) - PW'(f_last);
            f_cnt <= f_cnt + PW'(f_last) - PW'(st == S_NEXT && f_cnt != 0);
            if (st == S_NEXT && f_cnt != 0) f_rd <= f_rd + 1'b1;
            if (m_axi_p_RVALID) begin
                fifo[f_wr][32'(beat)*AXI_BITS +: AXI_BITS] <= m_axi_p_RDATA;
                beat <= 32'(beat) == REC_BEATS - 1 ? '0 : beat + 1'b1;
                if (f_last) f_wr <= f_wr + 1'b1;
            end
        end
    end

    // ---- the units -----------------------------------------------------------------------------
    logic running;
    assign running = st == S_RUN;
    logic [RWN*WB-1:0] a_data, b_data;
    logic [WB-1:0] sum_word;
    logic [T_IN-1:0] sum_ovf;

    // engine
    logic x_re;
    logic [15:0] x_rd_row, x_rd_word;
    logic out_valid, out_ovf_any;
    logic [15:0] out_row, out_ntile;
    logic [T_OUT*YW-1:0] out_y;
    logic [T_OUT-1:0] out_ovf;
    /* verilator lint_off UNUSEDSIGNAL */  // the engine's busy / read strobe: the bank reads every cycle
    logic unused_busy;
    assign unused_busy = e_busy | x_re | out_ovf_any;
    /* verilator lint_on UNUSEDSIGNAL */
    assign out_ovf_any = |out_ovf;
    logic [15:0] q_token;
    /* verilator lint_off UNUSEDSIGNAL */  // the slot: golden's gate index; the queue carries the gate itself
    logic [7:0] q_slot;
    /* verilator lint_on UNUSEDSIGNAL */
    logic [RT_GW-1:0] q_gate;
    logic [RT_IW-1:0] q_expert;
    assign q_expert = RT_IW'(field(rec, F_EXPERT));
    // the queue the router built: the engine's row during a gather, else the combine's
    assign q_index = (running && !is_cb && u_gather) ? x_rd_row : cb_q_index;

    // the engine's request: the step's record, or (a head's conv) the head's eng_* port, held while
    // its call runs; hd_eng marks that call (HID in, F out: the head's direct ports are idle then)
    logic hd_eng_start, hd_eng_bias;
    logic [15:0] hd_eng_rows, hd_eng_kt, hd_eng_nt, hd_eng_cout;
    logic [63:0] hd_eng_waddr, hd_eng_baddr;
    logic [15:0] lin_rows, lin_kt, lin_nt;
    logic [63:0] lin_waddr, lin_baddr;
    logic lin_bias;
    logic [31:0] lin_n, lin_wpr;           // the output row's codes, its words
    assign lin_rows = is_hd ? hd_eng_rows : e_rows;
    assign lin_kt = is_hd ? hd_eng_kt : e_kt;
    assign lin_nt = is_hd ? hd_eng_nt : e_nt;
    assign lin_waddr = is_hd ? hd_eng_waddr : e_waddr;
    assign lin_baddr = is_hd ? hd_eng_baddr : e_baddr;
    assign lin_bias = is_hd ? hd_eng_bias : e_bias;
    assign lin_n = is_hd ? 32'(hd_eng_cout) : u_n;
    assign lin_wpr = is_hd ? (32'(hd_eng_cout) + T_IN - 1) / T_IN : u_wpr;
    always_ff @(posedge clk)
        if (rst || !running || !is_hd) hd_eng <= 1'b0;
        else hd_eng <= hd_eng ? !e_done : hd_eng_start;

    linear_engine #(.T_IN(T_IN), .T_OUT(T_OUT), .WA(WA), .WW(WW), .WSB(WSB), .WACC(WACC), .PACK2(PACK2),
                    .PACK_SHIFT(PACK_SHIFT), .AXI_BITS(AXI_BITS), .TILE_BEATS(TILE_BEATS),
                    .TILE_BYTES(TILE_BYTES), .WPORTS(WPORTS), .ROWS_MAX(ROWS_MAX), .KT_MAX(KT_MAX), .NT_MAX(NT_MAX), .NBUF(NBUF),
                    .BSB(BSB), .BW(BW), .B_SHIFT(B_SHIFT), .B_ROUND(B_ROUND), .ACC_SHIFT(ACC_SHIFT),
                    .OW(OW), .O_SHIFT(O_SHIFT), .O_ROUND(O_ROUND), .O_SAT(O_SAT), .LOW(LOW), .L_SHIFT(L_SHIFT),
                    .L_ROUND(L_ROUND), .L_SAT(L_SAT), .IN_DF(IN_DF)) engine (
        .clk, .rst, .start(e_start || hd_eng_start), .rows(lin_rows), .k_tiles(lin_kt), .n_tiles(lin_nt),
        .w_addr(lin_waddr), .has_bias(lin_bias), .b_addr(lin_baddr), .out_logit(u_logit && !is_hd),
        .in_input(u_input && !is_hd), .busy(e_busy),
        .done(e_done), .rd_error(e_err), .x_re, .x_rd_row, .x_rd_word, .x_rdata(a_data[WB-1:0]), .out_valid,
        .out_row, .out_ntile, .out_y, .out_ovf,
        .m_axi_w_ARID, .m_axi_w_ARADDR, .m_axi_w_ARLEN, .m_axi_w_ARSIZE, .m_axi_w_ARBURST, .m_axi_w_ARVALID,
        .m_axi_w_ARREADY, .m_axi_w_RID, .m_axi_w_RLAST, .m_axi_w_RDATA, .m_axi_w_RRESP, .m_axi_w_RVALID,
        .m_axi_w_RREADY, .m_axi_w1_ARID, .m_axi_w1_ARADDR, .m_axi_w1_ARLEN, .m_axi_w1_ARSIZE, .m_axi_w1_ARBURST,
        .m_axi_w1_ARVALID, .m_axi_w1_ARREADY, .m_axi_w1_RID, .m_axi_w1_RLAST, .m_axi_w1_RDATA, .m_axi_w1_RRESP,
        .m_axi_w1_RVALID, .m_axi_w1_RREADY);

    /* verilator lint_off UNUSEDSIGNAL */  // addresses: the bits above a buffer's size stay 0
    logic [31:0] ln_raddr;
    /* verilator lint_on UNUSEDSIGNAL */
    logic ln_out_valid;
    logic [31:0] ln_out_index;
    logic [LN_L*LN_W-1:0] ln_out_y;
    logic [LN_L-1:0] ln_out_ovf;
    accel_ln #(.D(LN_D), .L(LN_L), .W(LN_W), .F(LN_F), .A_ROUND(LN_A_ROUND), .A_SAT(LN_A_SAT), .BW(LN_BW),
               .BF(LN_BF), .SW(LN_SW), .SF(LN_SF), .S_SAT(LN_S_SAT), .EPS(LN_EPS), .RW(LN_RW), .RF(LN_RF),
               .R_SIGNED(LN_R_SIGNED), .R_ROUND(LN_R_ROUND), .R_SAT(LN_R_SAT), .N(LN_N), .STEP(LN_STEP),
               .EW(LN_EW), .EF(LN_EF), .TABLE(LN_TABLE), .BSB(BSB), .AXI_BITS(AXI_BITS), .T_IN(T_IN),
               .XW(RWN)) ln (
        .clk, .rst, .start(ln_start), .rows(e_rows), .g_addr(ln_g), .b_addr(ln_b), .done(ln_done),
        .x_raddr(ln_raddr), .x_rwin(a_data), .out_valid(ln_out_valid), .out_index(ln_out_index),
        .out_y(ln_out_y), .out_ovf(ln_out_ovf),
        .m_axi_ARID(ln_ARID), .m_axi_ARADDR(ln_ARADDR), .m_axi_ARLEN(ln_ARLEN), .m_axi_ARSIZE(ln_ARSIZE),
        .m_axi_ARBURST(ln_ARBURST), .m_axi_ARVALID(ln_ARVALID), .m_axi_ARREADY(m_axi_l_ARREADY && !is_em),
        .m_axi_RID(m_axi_l_RID), .m_axi_RLAST(m_axi_l_RLAST), .m_axi_RDATA(m_axi_l_RDATA),
        .m_axi_RRESP(m_axi_l_RRESP), .m_axi_RVALID(m_axi_l_RVALID && !is_em), .m_axi_RREADY(ln_RREADY));

    // m_axi_l: the embedding's while an embed step runs, else LayerNorm's
    logic [0:0] ln_ARID, em_ARID;
    logic [63:0] ln_ARADDR, em_ARADDR;
    logic [7:0] ln_ARLEN, em_ARLEN;
    logic [2:0] ln_ARSIZE, em_ARSIZE;
    logic [1:0] ln_ARBURST, em_ARBURST;
    logic ln_ARVALID, em_ARVALID, ln_RREADY, em_RREADY;
    assign m_axi_l_ARID = is_em ? em_ARID : ln_ARID;
    assign m_axi_l_ARADDR = is_em ? em_ARADDR : ln_ARADDR;
    assign m_axi_l_ARLEN = is_em ? em_ARLEN : ln_ARLEN;
    assign m_axi_l_ARSIZE = is_em ? em_ARSIZE : ln_ARSIZE;
    assign m_axi_l_ARBURST = is_em ? em_ARBURST : ln_ARBURST;
    assign m_axi_l_ARVALID = is_em ? em_ARVALID : ln_ARVALID;
    assign m_axi_l_RREADY = is_em ? em_RREADY : ln_RREADY;

    // m_axi_i: the image reader's, or a head step's reads (never both at once)
    logic [0:0] im_ARID, hd_ARID;
    logic [63:0] im_ARADDR, hd_ARADDR;
    logic [7:0] im_ARLEN, hd_ARLEN;
    logic [2:0] im_ARSIZE, hd_ARSIZE;
    logic [1:0] im_ARBURST, hd_ARBURST;
    logic im_ARVALID, hd_ARVALID, im_RREADY, hd_RREADY;
    assign m_axi_i_ARID = is_hd ? hd_ARID : im_ARID;
    assign m_axi_i_ARADDR = is_hd ? hd_ARADDR : im_ARADDR;
    assign m_axi_i_ARLEN = is_hd ? hd_ARLEN : im_ARLEN;
    assign m_axi_i_ARSIZE = is_hd ? hd_ARSIZE : im_ARSIZE;
    assign m_axi_i_ARBURST = is_hd ? hd_ARBURST : im_ARBURST;
    assign m_axi_i_ARVALID = is_hd ? hd_ARVALID : im_ARVALID;
    assign m_axi_i_RREADY = is_hd ? hd_RREADY : im_RREADY;
    logic im_busy, im_we, em_busy, em_ovf, em_re, em_we;
    logic [FA-1:0] im_waddr, em_raddr, em_waddr;
    logic [T_IN-1:0] im_wstrb, em_wstrb;
    logic [WB-1:0] im_wdata, em_wdata;
    /* verilator lint_off UNUSEDSIGNAL */  // busy: the sequencer waits for done; the bank reads every cycle
    logic ie_unused;
    assign ie_unused = im_busy | em_busy | em_re;
    /* verilator lint_on UNUSEDSIGNAL */
    accel_image #(.SB(IM_SB), .WI(IM_WI), .C(IM_C), .IMG_H(IM_IMG_H), .IMG_W(IM_IMG_W), .PATCH(IM_PATCH), .BURST(IM_BURST), .AXI_BITS(AXI_BITS), .T_IN(T_IN), .WA(WA), .FA(FA)) image (
        .clk, .rst, .start(im_start), .img_addr, .busy(im_busy), .done(im_done), .rd_error(im_err),
        .m_axi_i_ARID(im_ARID), .m_axi_i_ARADDR(im_ARADDR), .m_axi_i_ARLEN(im_ARLEN), .m_axi_i_ARSIZE(im_ARSIZE),
        .m_axi_i_ARBURST(im_ARBURST), .m_axi_i_ARVALID(im_ARVALID), .m_axi_i_ARREADY(m_axi_i_ARREADY && !is_hd),
        .m_axi_i_RID, .m_axi_i_RLAST, .m_axi_i_RDATA, .m_axi_i_RRESP, .m_axi_i_RVALID(m_axi_i_RVALID && !is_hd),
        .m_axi_i_RREADY(im_RREADY), .fm_we(im_we), .fm_waddr(im_waddr), .fm_wstrb(im_wstrb), .fm_wdata(im_wdata));
    accel_embed #(.T(EM_T), .D(EM_D), .FA_ACT(EM_FA_ACT), .A_ROUND(EM_A_ROUND), .A_SAT(EM_A_SAT), .BSB(EM_BSB), .BW(EM_BW), .FB(EM_FB), .BURST(EM_BURST), .AXI_BITS(AXI_BITS), .T_IN(T_IN), .WA(WA), .FA(FA)) embed (
        .clk, .rst, .start(em_start), .cls_addr(ln_g), .pos_addr(ln_b), .busy(em_busy), .done(em_done),
        .rd_error(em_err), .ovf(em_ovf), .m_axi_e_ARID(em_ARID), .m_axi_e_ARADDR(em_ARADDR),
        .m_axi_e_ARLEN(em_ARLEN), .m_axi_e_ARSIZE(em_ARSIZE), .m_axi_e_ARBURST(em_ARBURST),
        .m_axi_e_ARVALID(em_ARVALID), .m_axi_e_ARREADY(m_axi_l_ARREADY && is_em), .m_axi_e_RID(m_axi_l_RID),
        .m_axi_e_RLAST(m_axi_l_RLAST), .m_axi_e_RDATA(m_axi_l_RDATA), .m_axi_e_RRESP(m_axi_l_RRESP),
        .m_axi_e_RVALID(m_axi_l_RVALID && is_em), .m_axi_e_RREADY(em_RREADY), .fm_re(em_re),
        .fm_raddr(em_raddr), .fm_rdata(a_data[WB-1:0]), .fm_we(em_we), .fm_waddr(em_waddr),
        .fm_wstrb(em_wstrb), .fm_wdata(em_wdata));

    // the features to DDR (kernels.h write_features' layout) over m_axi_f; a head step's writes there
    logic [0:0] wf_AWID, hd_AWID;
    logic [63:0] wf_AWADDR, hd_AWADDR;
    logic [7:0] wf_AWLEN, hd_AWLEN;
    logic [2:0] wf_AWSIZE, hd_AWSIZE;
    logic [1:0] wf_AWBURST, hd_AWBURST;
    logic wf_AWVALID, hd_AWVALID, wf_WLAST, hd_WLAST, wf_WVALID, hd_WVALID, wf_BREADY, hd_BREADY;
    logic [AXI_BITS-1:0] wf_WDATA, hd_WDATA;
    logic [AXI_BITS/8-1:0] wf_WSTRB, hd_WSTRB;
    assign m_axi_f_AWID = is_hd ? hd_AWID : wf_AWID;
    assign m_axi_f_AWADDR = is_hd ? hd_AWADDR : wf_AWADDR;
    assign m_axi_f_AWLEN = is_hd ? hd_AWLEN : wf_AWLEN;
    assign m_axi_f_AWSIZE = is_hd ? hd_AWSIZE : wf_AWSIZE;
    assign m_axi_f_AWBURST = is_hd ? hd_AWBURST : wf_AWBURST;
    assign m_axi_f_AWVALID = is_hd ? hd_AWVALID : wf_AWVALID;
    assign m_axi_f_WDATA = is_hd ? hd_WDATA : wf_WDATA;
    assign m_axi_f_WSTRB = is_hd ? hd_WSTRB : wf_WSTRB;
    assign m_axi_f_WLAST = is_hd ? hd_WLAST : wf_WLAST;
    assign m_axi_f_WVALID = is_hd ? hd_WVALID : wf_WVALID;
    assign m_axi_f_BREADY = is_hd ? hd_BREADY : wf_BREADY;
    logic wf_busy, wf_re;
    logic [FA-1:0] wf_raddr;
    /* verilator lint_off UNUSEDSIGNAL */  // busy: the sequencer waits for done; the bank reads every cycle
    logic wf_unused;
    assign wf_unused = wf_busy | wf_re;
    /* verilator lint_on UNUSEDSIGNAL */
    accel_wfeat #(.AXI_BITS(AXI_BITS), .T_IN(T_IN), .WA(WA), .SB(WF_SB), .CLS(WF_CLS), .BURST(WF_BURST),
                  .OUTSTANDING(WF_OUTSTANDING), .FA(FA)) wfeat (
        .clk, .rst, .start(wf_start), .rows(e_rows), .n(u_n), .code0(feat_code0), .feat_addr,
        .busy(wf_busy), .done(wf_done), .wr_error(wf_err), .fm_re(wf_re), .fm_raddr(wf_raddr),
        .fm_rdata(a_data[WB-1:0]),
        .m_axi_AWID(wf_AWID), .m_axi_AWADDR(wf_AWADDR), .m_axi_AWLEN(wf_AWLEN),
        .m_axi_AWSIZE(wf_AWSIZE), .m_axi_AWBURST(wf_AWBURST), .m_axi_AWVALID(wf_AWVALID),
        .m_axi_AWREADY(m_axi_f_AWREADY && !is_hd), .m_axi_WDATA(wf_WDATA), .m_axi_WSTRB(wf_WSTRB),
        .m_axi_WLAST(wf_WLAST), .m_axi_WVALID(wf_WVALID), .m_axi_WREADY(m_axi_f_WREADY && !is_hd),
        .m_axi_BID(m_axi_f_BID), .m_axi_BRESP(m_axi_f_BRESP), .m_axi_BVALID(m_axi_f_BVALID && !is_hd),
        .m_axi_BREADY(wf_BREADY));

    /* verilator lint_off UNUSEDSIGNAL */  // addresses: the bits above a buffer's size stay 0
    logic [31:0] ge_raddr;
    /* verilator lint_on UNUSEDSIGNAL */
    logic ge_out_valid;
    logic [31:0] ge_out_index;
    logic [WB-1:0] ge_out_y;
    logic [T_IN-1:0] ge_out_ovf;
    accel_gelu #(.W(GE_W), .F(GE_F), .OUT_ROUND(GE_OUT_ROUND), .OUT_SAT(GE_OUT_SAT), .N(GE_N), .STEP(GE_STEP),
                 .EW(GE_EW), .EF(GE_EF), .TABLE(GE_TABLE), .LANES(T_IN)) gelu (
        .clk, .rst, .start(ge_start), .n_words(ge_words), .done(ge_done), .x_raddr(ge_raddr),
        .x_rdata(a_data[WB-1:0]), .out_valid(ge_out_valid), .out_index(ge_out_index), .out_y(ge_out_y),
        .out_ovf(ge_out_ovf));

    /* verilator lint_off UNUSEDSIGNAL */  // addresses: the bits above a buffer's size stay 0
    logic [31:0] ad_raddr;
    /* verilator lint_on UNUSEDSIGNAL */
    logic ad_out_valid;
    logic [31:0] ad_out_index;
    logic [WB-1:0] ad_out_y;
    logic [T_IN-1:0] ad_out_ovf;
    accel_add #(.W(WA), .SAT(AD_SAT), .LANES(T_IN)) add (
        .clk, .rst, .start(ad_start), .n_words(ge_words), .done(ad_done), .x_raddr(ad_raddr),
        .x_rdata(a_data[WB-1:0]), .f_rdata(b_data[WB-1:0]), .out_valid(ad_out_valid), .out_index(ad_out_index),
        .out_y(ad_out_y), .out_ovf(ad_out_ovf));

    // the router's logits: one token's E codes a word, written by the engine's gate linears
    logic [RT_E*RT_LW-1:0] lmem [ROWS_MAX];
    logic [RT_E*RT_LW-1:0] l_rdata;
    /* verilator lint_off UNUSEDSIGNAL */  // addresses: the bits above a buffer's size stay 0
    logic [15:0] rt_raddr;
    /* verilator lint_on UNUSEDSIGNAL */
    always_ff @(posedge clk) begin
        l_rdata <= lmem[RA'(rt_raddr)];
        if (running && !is_ln && !is_ge && !is_rt && !is_cb && !is_hd && out_valid && u_dst == 4'(ID_LOGITS))
            for (int t = 0; t < T_OUT; t++)
                if (32'(out_ntile) * T_OUT + t < RT_E)
                    lmem[RA'(out_row)][(32'(out_ntile) * T_OUT + t) * RT_LW +: RT_LW] <= out_y[t*YW +: RT_LW];
    end

    accel_router #(.E(RT_E), .K(RT_K), .LW(RT_LW), .LFB(RT_LFB), .EW(RT_EW), .EF(RT_EF), .E_ROUND(RT_E_ROUND),
                   .E_SAT(RT_E_SAT), .SW(RT_SW), .SF(RT_SF), .S_ROUND(RT_S_ROUND), .S_SAT(RT_S_SAT), .RW(RT_RW),
                   .RF(RT_RF), .R_ROUND(RT_R_ROUND), .R_SAT(RT_R_SAT), .GW(RT_GW), .GF(RT_GF),
                   .G_ROUND(RT_G_ROUND), .G_SAT(RT_G_SAT), .LGW(RT_LGW), .LGF(RT_LGF), .LOG2E(RT_LOG2E),
                   .EN(RT_EN), .ESTEP(RT_ESTEP), .ETW(RT_ETW), .ETF(RT_ETF), .RN(RT_RN), .RSTEP(RT_RSTEP),
                   .RTW(RT_RTW), .RTF(RT_RTF), .RK(RT_RK), .ETABLE(RT_ETABLE), .RTABLE(RT_RTABLE),
                   .ROWS_MAX(ROWS_MAX), .STAGES(RT_STAGES), .IW(RT_IW)) router (
        .clk, .rst, .start(rt_start), .rows(e_rows), .done(rt_done), .x_raddr(rt_raddr), .x_rdata(l_rdata),
        .out_valid(rt_out_valid), .out_token(rt_out_token), .out_idx(rt_out_idx), .out_gate(rt_out_gate),
        .out_ovf(rt_out_ovf), .q_len, .q_expert, .q_index(q_index[RA-1:0]), .q_token, .q_slot, .q_gate);

    /* verilator lint_off UNUSEDSIGNAL */  // addresses: the bits above a buffer's size stay 0
    logic [31:0] cb_raddr;
    /* verilator lint_on UNUSEDSIGNAL */
    logic cb_ovf;
    accel_combine #(.W(WA), .A_ROUND(CB_A_ROUND), .A_SAT(AD_SAT), .GW(RT_GW), .GF(RT_GF),
                    .SUMW(CB_SUMW), .LANES(T_IN), .D(CB_D), .ROWS_MAX(ROWS_MAX), .TW(16)) combine (
        .clk, .rst, .clear(rt_start), .start(cb_start), .rows(e_rows), .done(cb_done), .q_index(cb_q_index),
        .q_token, .q_gate, .y_raddr(cb_raddr), .y_rdata(a_data[WB-1:0]), .rd_addr(b_addr_c),
        .rd_y(sum_word), .rd_ovf(sum_ovf), .ovf(cb_ovf));

    localparam int AT_RW = (AT_LANES > T_IN) ? AT_LANES / T_IN : 1;  // words a K/V read takes
    initial if (AT_RW > RWN) $error("accel_seq: attention reads %0d words a cycle, the bank's ports %0d", AT_RW, RWN);
    logic at_ovf, at_re, at_re2, at_we;
    logic [FA-1:0] at_raddr, at_raddr2, at_waddr;
    logic [T_IN-1:0] at_wstrb;
    logic [WB-1:0] at_wdata;
    /* verilator lint_off UNUSEDSIGNAL */  // the bank reads every cycle
    logic at_unused;
    assign at_unused = at_re | at_re2;
    /* verilator lint_on UNUSEDSIGNAL */
    accel_attn #(.T(AT_T), .HD(AT_HD), .NH(AT_NH), .P(AT_P), .LANES(AT_LANES), .W(AT_W), .F(AT_F), .A_ROUND(AT_A_ROUND), .A_SAT(AT_A_SAT), .DOTW(AT_DOTW), .AVW(AT_AVW), .SC_ROUND(AT_SC_ROUND), .SC_SAT(AT_SC_SAT), .SM_W(AT_SM_W), .SM_F(AT_SM_F), .SM_EW(AT_SM_EW), .SM_EF(AT_SM_EF), .SM_E_ROUND(AT_SM_E_ROUND), .SM_E_SAT(AT_SM_E_SAT), .SM_SW(AT_SM_SW), .SM_SF(AT_SM_SF), .SM_S_ROUND(AT_SM_S_ROUND), .SM_S_SAT(AT_SM_S_SAT), .SM_RW(AT_SM_RW), .SM_RF(AT_SM_RF), .SM_R_ROUND(AT_SM_R_ROUND), .SM_R_SAT(AT_SM_R_SAT), .SM_LW(AT_SM_LW), .SM_LF(AT_SM_LF), .SM_LOG2E(AT_SM_LOG2E), .SM_EN(AT_SM_EN), .SM_ESTEP(AT_SM_ESTEP), .SM_ETW(AT_SM_ETW), .SM_ETF(AT_SM_ETF), .SM_RN(AT_SM_RN), .SM_RSTEP(AT_SM_RSTEP), .SM_RTW(AT_SM_RTW), .SM_RTF(AT_SM_RTF), .SM_RK(AT_SM_RK), .SM_ETABLE(AT_SM_ETABLE), .SM_RTABLE(AT_SM_RTABLE), .T_IN(T_IN), .FA(FA)) attn (
        .clk, .rst, .start(at_start), .done(at_done), .ovf(at_ovf), .fm_re(at_re), .fm_raddr(at_raddr),
        .fm_rdata(a_data[AT_RW*WB-1:0]), .fm2_re(at_re2), .fm2_raddr(at_raddr2), .fm2_rdata(b_data[WB-1:0]),
        .fm_we(at_we), .fm_waddr(at_waddr), .fm_wstrb(at_wstrb), .fm_wdata(at_wdata));

    // ---- the task heads (HEADS = 1) ------------------------------------------------------------
    logic hd_on;
    assign hd_on = running && is_hd && !hd_eng;
    logic [FA-1:0] hd_qkv_a1, hd_qkv_a2, hd_f_a1, hd_f_a2, hd_hid_a, hd_h_a;
    logic [WB-1:0] hd_qkv_q1, hd_qkv_q2, hd_qkv_d, hd_f_q1, hd_f_q2, hd_f_d, hd_hid_d, hd_h_q;
    logic hd_qkv_we, hd_f_we, hd_hid_we;
    logic [T_IN-1:0] hd_qkv_strb, hd_f_strb, hd_hid_strb;
    generate if (HEADS != 0) begin : g_heads
        /* verilator lint_off UNUSEDSIGNAL */  // busy: the sequencer waits for done
        logic hd_busy;
        /* verilator lint_on UNUSEDSIGNAL */
        accel_heads #(.AXI_BITS(AXI_BITS), .SB(HD_SB), .WA(WA), .T_IN(T_IN), .T_OUT(T_OUT), .G(HD_G),
                      .BURST(HD_BURST), .RD_OUTSTANDING(HD_RD_OUTSTANDING), .WR_OUTSTANDING(HD_WR_OUTSTANDING),
                      .FA(FA), .A_ROUND(HD_A_ROUND), .RESIZE_LFH(HD_RESIZE_LFH), .RESIZE_LFW(HD_RESIZE_LFW),
                      .N_OPS(HD_N_OPS), .N_TASKS(HD_N_TASKS), .P_KIND(HD_P_KIND), .P_K(HD_P_K),
                      .P_RELU(HD_P_RELU), .P_BAND(HD_P_BAND), .P_CIN(HD_P_CIN), .P_COUT(HD_P_COUT),
                      .P_H(HD_P_H), .P_W(HD_P_W), .P_LFH(HD_P_LFH), .P_LFW(HD_P_LFW), .P_SRC(HD_P_SRC),
                      .P_DST(HD_P_DST), .OUT_CH(HD_OUT_CH), .OFF_HEAD_W(HD_OFF_HEAD_W),
                      .OFF_HEAD_B(HD_OFF_HEAD_B), .GRID_C(HD_GRID_C), .GRID_H(HD_GRID_H), .GRID_W(HD_GRID_W),
                      .GRID_FIRST(HD_GRID_FIRST), .D_WORDS(HD_D_WORDS), .SCRATCH_BYTES(HD_SCRATCH_BYTES)) heads (
            .clk, .rst, .start(hd_start), .grid(hd_grid), .layer(hd_layer), .task_id(task_id[7:0]),
            .pred_base, .scratch_base, .w_base, .busy(hd_busy), .done(hd_done), .rd_error(hd_rd_err),
            .wr_error(hd_wr_err), .eng_start(hd_eng_start), .eng_rows(hd_eng_rows), .eng_k_tiles(hd_eng_kt),
            .eng_n_tiles(hd_eng_nt), .eng_cout(hd_eng_cout), .eng_w_addr(hd_eng_waddr),
            .eng_b_addr(hd_eng_baddr), .eng_has_bias(hd_eng_bias), .eng_done(e_done && is_hd),
            .qkv_addr1(hd_qkv_a1), .qkv_q1(hd_qkv_q1), .qkv_addr2(hd_qkv_a2), .qkv_we(hd_qkv_we),
            .qkv_strb(hd_qkv_strb), .qkv_d(hd_qkv_d), .qkv_q2(hd_qkv_q2),
            .hid_we(hd_hid_we), .hid_addr(hd_hid_a), .hid_strb(hd_hid_strb), .hid_d(hd_hid_d),
            .f_addr1(hd_f_a1), .f_q1(hd_f_q1), .f_addr2(hd_f_a2), .f_we(hd_f_we), .f_strb(hd_f_strb),
            .f_d(hd_f_d), .f_q2(hd_f_q2), .h_addr(hd_h_a), .h_q(hd_h_q),
            .m_axi_ARID(hd_ARID), .m_axi_ARADDR(hd_ARADDR), .m_axi_ARLEN(hd_ARLEN), .m_axi_ARSIZE(hd_ARSIZE),
            .m_axi_ARBURST(hd_ARBURST), .m_axi_ARVALID(hd_ARVALID), .m_axi_ARREADY(m_axi_i_ARREADY && is_hd),
            .m_axi_RID(m_axi_i_RID), .m_axi_RLAST(m_axi_i_RLAST), .m_axi_RDATA(m_axi_i_RDATA),
            .m_axi_RRESP(m_axi_i_RRESP), .m_axi_RVALID(m_axi_i_RVALID && is_hd), .m_axi_RREADY(hd_RREADY),
            .m_axi_AWID(hd_AWID), .m_axi_AWADDR(hd_AWADDR), .m_axi_AWLEN(hd_AWLEN), .m_axi_AWSIZE(hd_AWSIZE),
            .m_axi_AWBURST(hd_AWBURST), .m_axi_AWVALID(hd_AWVALID), .m_axi_AWREADY(m_axi_f_AWREADY && is_hd),
            .m_axi_WDATA(hd_WDATA), .m_axi_WSTRB(hd_WSTRB), .m_axi_WLAST(hd_WLAST), .m_axi_WVALID(hd_WVALID),
            .m_axi_WREADY(m_axi_f_WREADY && is_hd), .m_axi_BID(m_axi_f_BID), .m_axi_BRESP(m_axi_f_BRESP),
            .m_axi_BVALID(m_axi_f_BVALID && is_hd), .m_axi_BREADY(hd_BREADY));
    end else begin : g_no_heads
        assign {hd_done, hd_rd_err, hd_wr_err, hd_eng_start, hd_eng_bias} = '0;
        assign {hd_eng_rows, hd_eng_kt, hd_eng_nt, hd_eng_cout, hd_eng_waddr, hd_eng_baddr} = '0;
        assign {hd_qkv_a1, hd_qkv_a2, hd_f_a1, hd_f_a2, hd_hid_a, hd_h_a} = '0;
        assign {hd_qkv_we, hd_f_we, hd_hid_we, hd_qkv_strb, hd_f_strb, hd_hid_strb} = '0;
        assign {hd_qkv_d, hd_f_d, hd_hid_d} = '0;
        assign {hd_ARID, hd_ARADDR, hd_ARLEN, hd_ARSIZE, hd_ARBURST, hd_ARVALID, hd_RREADY} = '0;
        assign {hd_AWID, hd_AWADDR, hd_AWLEN, hd_AWSIZE, hd_AWBURST, hd_AWVALID} = '0;
        assign {hd_WDATA, hd_WSTRB, hd_WLAST, hd_WVALID, hd_BREADY} = '0;
        /* verilator lint_off UNUSEDSIGNAL */
        wire hd_unused = &{1'b0, hd_qkv_q1, hd_qkv_q2, hd_f_q1, hd_f_q2, hd_h_q, hd_grid, hd_layer, hd_start,
                           pred_base, scratch_base};
        /* verilator lint_on UNUSEDSIGNAL */
    end endgenerate

    // ---- the feature-map ports: the running unit's, else the debug port's ----------------------
    logic [3:0] a_buf, b_buf, w_buf;
    logic [FA-1:0] a_addr, b_addr;
    logic [$clog2(ROWS_MAX*(CB_D/T_IN))-1:0] b_addr_c;
    logic w_we;
    logic [FA-1:0] w_addr;
    logic [RWN*T_IN-1:0] w_strb;
    logic [RWN*WB-1:0] w_data;
    logic [31:0] flagged;                 // output lanes of real columns flagged this cycle
    assign b_addr_c = $bits(b_addr_c)'(b_addr);

    // place `lanes` codes (column c of row r of a buffer of wpr words a row) into the write window
    function automatic void place(input logic [31:0] r, input logic [31:0] c, input logic [31:0] wpr,
                                  input logic [31:0] n, input int lanes, input logic [RWN*WB-1:0] v,
                                  input logic [RWN*T_IN-1:0] ovf, output logic [FA-1:0] addr,
                                  output logic [RWN*T_IN-1:0] strb, output logic [RWN*WB-1:0] data,
                                  output logic [31:0] nflag);
        int off;
        addr = FA'(r * wpr + c / T_IN);
        off = int'(c % T_IN);
        strb = '0;
        data = '0;
        nflag = '0;
        for (int l = 0; l < RWN * T_IN; l++)
            if (l >= off && l < off + lanes && c + 32'(l - off) < n) begin
                strb[l] = 1'b1;
                data[l*WA +: WA] = v[(l - off)*WA +: WA];
                nflag = nflag + 32'(ovf[l - off]);
            end
    endfunction

    always_comb begin
        logic [RWN*WB-1:0] v;
        logic [RWN*T_IN-1:0] o;
        a_buf = dbg_buf;  // the debug port reads through A (the combine's sums through B)
        a_addr = dbg_addr;
        b_buf = dbg_buf == 4'(ID_SUM) ? 4'(ID_SUM) : 4'(ID_NONE);  // a port a step does not use: no buffer
        b_addr = dbg_addr;
        w_we = dbg_we && !running;
        w_buf = dbg_buf;
        w_addr = dbg_addr;
        w_strb = (RWN*T_IN)'({T_IN{1'b1}});
        w_data = (RWN*WB)'(dbg_wdata);
        flagged = '0;
        v = '0;
        o = '0;
        if (running) begin
            a_buf = 4'(ID_NONE);
            b_buf = 4'(ID_NONE);
            w_we = 1'b0;
            w_buf = u_dst;
            if (is_im) begin  // the image's im2col rows into img
                w_we = im_we;
                w_addr = im_waddr;
                w_strb = (RWN*T_IN)'(im_wstrb);
                w_data = (RWN*WB)'(im_wdata);
            end else if (is_em) begin  // X = [cls; F] + pos
                a_buf = u_src;
                a_addr = em_raddr;
                w_we = em_we;
                w_addr = em_waddr;
                w_strb = (RWN*T_IN)'(em_wstrb);
                w_data = (RWN*WB)'(em_wdata);
            end else if (is_at) begin  // K/V on A, Q on B, O written
                a_buf = u_src;
                a_addr = at_raddr;
                b_buf = u_src;
                b_addr = at_raddr2;
                w_we = at_we;
                w_addr = at_waddr;
                w_strb = (RWN*T_IN)'(at_wstrb);
                w_data = (RWN*WB)'(at_wdata);
            end else if (is_wf) begin  // the features' codes from H, one a cycle
                a_buf = u_src;
                a_addr = wf_raddr;
            end else if (is_cb) begin
                a_buf = u_src;
                a_addr = FA'(cb_raddr);
                b_buf = 4'(ID_SUM);
                b_addr = '0;
            end else if (is_rt) begin
                a_buf = 4'(ID_LOGITS);
                a_addr = '0;
            end else if (is_ad) begin  // dst += src
                a_buf = u_dst;
                a_addr = FA'(ad_raddr);
                b_buf = u_src;
                b_addr = FA'(ad_raddr);
                v = (RWN*WB)'(ad_out_y);
                o = (RWN*T_IN)'(ad_out_ovf);
                w_we = ad_out_valid;
                place(ad_out_index / u_wpr, (ad_out_index % u_wpr) * T_IN, u_wpr, u_n, T_IN, v, o, w_addr, w_strb,
                      w_data, flagged);
            end else if (is_ge) begin  // in place
                a_buf = u_src;
                a_addr = FA'(ge_raddr);
                v = (RWN*WB)'(ge_out_y);
                o = (RWN*T_IN)'(ge_out_ovf);
                w_we = ge_out_valid;
                place(ge_out_index / u_wpr, (ge_out_index % u_wpr) * T_IN, u_wpr, u_n, T_IN, v, o, w_addr,
                      w_strb, w_data, flagged);
            end else if (is_ln) begin
                a_buf = u_src;
                a_addr = FA'(ln_raddr);
                v = (RWN*WB)'(ln_out_y);
                o = (RWN*T_IN)'(ln_out_ovf);
                w_we = ln_out_valid;
                place(0, ln_out_index * LN_L, u_wpr, 32'(e_rows) * u_n, LN_L, v, o, w_addr, w_strb, w_data, flagged);
            end else if (is_hd && !hd_eng) begin  // the head on its direct ports (hd_on)
                w_we = 1'b0;
            end else begin  // the linear engine (a head's conv call: HID -> F)
                a_buf = is_hd ? 4'(ID_HID) : u_src;
                w_buf = is_hd ? 4'(ID_F) : u_dst;
                a_addr = FA'(32'(u_gather && !is_hd ? q_token : x_rd_row) * 32'(lin_kt) + 32'(x_rd_word));
                for (int t = 0; t < T_OUT; t++) v[t*WA +: WA] = out_y[t*YW +: WA];
                o = (RWN*T_IN)'(out_ovf);
                w_we = out_valid && (is_hd || u_dst != 4'(ID_LOGITS));
                place(32'(out_row), 32'(out_ntile) * T_OUT, lin_wpr, lin_n, T_OUT, v, o, w_addr, w_strb, w_data,
                      flagged);
                if (!is_hd && u_dst == 4'(ID_LOGITS)) begin  // the router logits: flags of the E real columns
                    flagged = '0;
                    if (out_valid)
                        for (int t = 0; t < T_OUT; t++)
                            if (32'(out_ntile) * T_OUT + t < RT_E) flagged = flagged + 32'(out_ovf[t]);
                end
            end
            if (!w_we && !(is_rt || is_cb || is_at || is_em)) flagged = '0;
            if (is_at) flagged = 32'(at_done && at_ovf);
            if (is_em) flagged = 32'(em_done && em_ovf);
            if (is_im || is_wf) flagged = '0;
            if (is_rt) flagged = 32'(rt_out_valid && rt_out_ovf);
            if (is_cb) flagged = 32'(cb_done && cb_ovf);
        end
    end
    assign dbg_rdata = dbg_buf == 4'(ID_SUM) ? b_data[WB-1:0] : a_data[WB-1:0];
    always_ff @(posedge clk) dbg_sum_ovf <= sum_ovf;

    accel_fm #(.T_IN(T_IN), .WA(WA), .RWN(RWN), .D_WORDS(D_WORDS), .QKV_WORDS(QKV_WORDS), .HID_WORDS(HID_WORDS),
               .IMG_WORDS(IMG_WORDS), .ID_IMG(ID_IMG), .ID_X(ID_X), .ID_H(ID_H), .ID_O(ID_O), .ID_F(ID_F), .ID_QKV(ID_QKV), .ID_HID(ID_HID),
               .ID_SUM(ID_SUM)) fm (
        .clk, .a_buf, .a_addr, .a_data, .b_buf, .b_addr, .b_data, .sum_data(sum_word), .w_we, .w_buf, .w_addr,
        .w_strb, .w_data, .hd_on, .hd_qkv_a1, .hd_qkv_q1, .hd_qkv_a2, .hd_qkv_we, .hd_qkv_strb, .hd_qkv_d,
        .hd_qkv_q2, .hd_f_a1, .hd_f_q1, .hd_f_a2, .hd_f_we, .hd_f_strb, .hd_f_d, .hd_f_q2, .hd_hid_we,
        .hd_hid_a, .hd_hid_strb, .hd_hid_d, .hd_h_a, .hd_h_q);
endmodule
