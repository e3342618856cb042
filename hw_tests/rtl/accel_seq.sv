// The layer-program sequencer (first slice of the RTL accelerator): reads program.bin
// (mtl_moe/program.py: a header, then one record of STEP_WORDS little-endian int32 words per step)
// from memory over its own AXI4 read master and runs the program's linear steps on the shared
// linear unit (linear_engine.sv), its weights from weights.bin at w_base over the engine's master.
//
// Per step: fetch the record (STEP_WORDS * 32 / AXI_BITS beats, one burst), decode; a linear step
// waits for step_go (the on-chip input rows are written through the x port by the side that owns the
// feature maps: in this slice the test bench, with the golden model's codes) with the rows to run
// (the record's, or for an expert step, rows = ROWS_QUEUE, the length of the expert's token queue;
// 0 skips it), then starts the engine with
//   rows, k_tiles, n_tiles        from the record,
//   w_addr = w_base + w_off + task * w_task_stride   (per-task router matrices),
//   b_addr = w_base + b_off, has_bias = b_off != NO_OFFSET,
// and reports the cycles from the engine's start to its done (step_done, step_cycles): what
// hw_tests/test_accel_rtl.py compares with the performance model's cycles of the same step.
// A layernorm step (accel_ln.sv: gamma at w_base + w_off, beta at w_base + b_off, over m_axi_l)
// runs its rows the same way, its input rows written through the ln_x port.
// A gelu step runs rows x ceil(n / T_IN) words of its buffer (ge_x port) through T_IN gelu_units
// (accel_gelu.sv); a residual step adds two such buffers word by word (accel_add.sv). A router_topk
// step runs the router's logits (rt_x port) through accel_router.sv: gates, top-k and the per-expert
// token queues; an expert step (rows = ROWS_QUEUE) then runs its queue's length (step_rows shows it,
// go_rows is ignored). An expert_combine step adds the gated W2 rows (cb_y port) into the tokens'
// sums (accel_combine.sv), read back through cb_rd_addr. Any other op is skipped (step_skip).
// A header that is not an mtl-moe program of this version stops the run with error set.
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
    parameter int NO_OFFSET = -1,
    parameter int ROWS_QUEUE = -1,
    // word index of each field in a record (mtl_moe.program.STEP_FIELDS)
    parameter int F_OPCODE = 0,
    parameter int F_ROWS = 2,
    parameter int F_N = 4,
    parameter int F_W_OFF = 7,
    parameter int F_W_TASK_STRIDE = 8,
    parameter int F_B_OFF = 9,
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
    parameter int GE_WORDS_MAX = 64,
    // the residual add's (act overflow mode; a buffer of AD_WORDS_MAX T_IN-value words)
    parameter int AD_SAT = 0,
    parameter int AD_WORDS_MAX = 64,
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
    // the combine's (accel_combine.sv): act rounding / overflow, the exact sum's width, n_embd
    parameter int CB_A_ROUND = 0,
    parameter int CB_SUMW = 34,
    parameter int CB_D = 64,
    localparam int CB_WORDS = ROWS_MAX * ((CB_D + T_IN - 1) / T_IN)
) (
    input  logic clk,
    input  logic rst,
    input  logic start,
    input  logic [63:0] prog_addr,    // program.bin, AXI_BITS/8-aligned
    input  logic [63:0] w_base,       // weights.bin
    input  logic [31:0] task_id,
    output logic busy,
    output logic done,
    output logic error,               // bad header or a read error response (sticky until start)
    // the step handshake
    output logic step_req,            // a linear step waits for its input rows and step_go
    output logic [31:0] step_index,
    output logic [31:0] step_rows,    // the record's rows (ROWS_QUEUE: an expert's queue)
    input  logic step_go,
    input  logic [15:0] go_rows,      // rows to run (0: skip the step)
    output logic step_done,           // pulse: the engine finished this step
    output logic step_skip,           // pulse: a step this slice does not run
    output logic [31:0] step_cycles,  // engine start -> done of the step just done
    // the engine's input buffer and its results
    input  logic x_we,
    input  logic [$clog2(ROWS_MAX*KT_MAX)-1:0] x_addr,
    input  logic [T_IN*WA-1:0] x_data,
    output logic out_valid,
    output logic [15:0] out_row,
    output logic [15:0] out_ntile,
    output logic [T_OUT*OW-1:0] out_y,
    output logic [T_OUT-1:0] out_ovf,
    // the LayerNorm step's input buffer and results (accel_ln.sv)
    input  logic ln_x_we,
    input  logic [$clog2(ROWS_MAX*(LN_D/LN_L))-1:0] ln_x_addr,
    input  logic [LN_L*LN_W-1:0] ln_x_data,
    output logic ln_out_valid,
    output logic [31:0] ln_out_index,
    output logic [LN_L*LN_W-1:0] ln_out_y,
    output logic [LN_L-1:0] ln_out_ovf,
    // the gelu step's buffer and results (accel_gelu.sv)
    input  logic ge_x_we,
    input  logic [$clog2(GE_WORDS_MAX)-1:0] ge_x_addr,
    input  logic [T_IN*GE_W-1:0] ge_x_data,
    output logic ge_out_valid,
    output logic [31:0] ge_out_index,
    output logic [T_IN*GE_W-1:0] ge_out_y,
    output logic [T_IN-1:0] ge_out_ovf,
    // the residual step's two buffers and results (accel_add.sv)
    input  logic ad_x_we,
    input  logic ad_x_sel,
    input  logic [$clog2(AD_WORDS_MAX)-1:0] ad_x_addr,
    input  logic [T_IN*WA-1:0] ad_x_data,
    output logic ad_out_valid,
    output logic [31:0] ad_out_index,
    output logic [T_IN*WA-1:0] ad_out_y,
    output logic [T_IN-1:0] ad_out_ovf,
    // the router_topk step's logits (one word of E codes a token) and its choices (accel_router.sv)
    input  logic rt_x_we,
    input  logic [$clog2(ROWS_MAX)-1:0] rt_x_addr,
    input  logic [RT_E*RT_LW-1:0] rt_x_data,
    output logic rt_out_valid,
    output logic [15:0] rt_out_token,
    output logic [RT_K*RT_IW-1:0] rt_out_idx,
    output logic [RT_K*RT_GW-1:0] rt_out_gate,
    output logic rt_out_ovf,
    // the expert_combine step's input (the expert's W2 output rows) and the MoE block's output
    input  logic cb_y_we,
    input  logic [$clog2(CB_WORDS)-1:0] cb_y_addr,
    input  logic [T_IN*WA-1:0] cb_y_data,
    input  logic [$clog2(CB_WORDS)-1:0] cb_rd_addr,
    output logic [T_IN*WA-1:0] cb_rd_y,
    output logic [T_IN-1:0] cb_rd_ovf,
    output logic cb_ovf,
    // AXI4 read master: LayerNorm's gamma / beta
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
    output logic m_axi_w_RREADY
);
    localparam int REC_BITS = STEP_WORDS * 32;
    localparam int REC_BEATS = REC_BITS / AXI_BITS;  // beats of one record (the header is one too)
    localparam int BB = REC_BEATS > 1 ? $clog2(REC_BEATS) : 1;

    initial if (REC_BITS % AXI_BITS != 0)
        $error("accel_seq: a %0d-bit program record is not whole %0d-bit AXI words", REC_BITS, AXI_BITS);

    typedef enum logic [2:0] {S_IDLE, S_AR, S_R, S_DECODE, S_WAIT_GO, S_RUN} state_t;
    state_t st;
    logic [REC_BITS-1:0] rec;
    logic [BB-1:0] beat;
    logic [31:0] blk, n_steps;            // record being fetched (0: the header), steps in the program
    logic [15:0] e_rows, e_kt, e_nt;
    logic [63:0] e_waddr, e_baddr;
    logic e_bias, e_start, e_done, e_busy, e_err;
    logic is_ln, ln_start, ln_done, is_ge, ge_start, ge_done;
    logic [31:0] ge_words;
    logic is_ad, ad_start, ad_done;
    logic is_rt, rt_start, rt_done;
    logic is_cb, cb_start, cb_done;
    /* verilator lint_off UNUSEDSIGNAL */  // the combine's row counter: bits above the queue depth stay 0
    logic [15:0] q_index;
    /* verilator lint_on UNUSEDSIGNAL */
    logic [RT_E*16-1:0] q_len;
    logic [15:0] q_rows;                  // an expert step's queue length (the router's, in RTL)
    logic [63:0] ln_g, ln_b;
    logic [31:0] cyc;

    function automatic logic [31:0] field(input logic [REC_BITS-1:0] r, input int i);
        return r[i*32 +: 32];
    endfunction

    assign m_axi_p_ARID = '0;
    assign m_axi_p_ARADDR = prog_addr + 64'(blk) * 64'(REC_BITS / 8);
    assign m_axi_p_ARLEN = 8'(REC_BEATS - 1);
    assign m_axi_p_ARSIZE = 3'($clog2(AXI_BITS / 8));
    assign m_axi_p_ARBURST = 2'b01;
    assign m_axi_p_ARVALID = st == S_AR;
    assign m_axi_p_RREADY = st == S_R;
    assign step_req = st == S_WAIT_GO;
    assign step_index = blk - 1;
    // an expert step runs on its queue: the length the router built (the record says ROWS_QUEUE)
    always_comb begin
        q_rows = '0;
        for (int e = 0; e < RT_E; e++)
            if ($signed(field(rec, F_EXPERT)) == e) q_rows = q_len[e*16 +: 16];
    end
    assign step_rows = $signed(field(rec, F_ROWS)) == ROWS_QUEUE ? 32'(q_rows) : field(rec, F_ROWS);
    assign busy = st != S_IDLE;

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
        if (rst) begin
            st <= S_IDLE;
            error <= 1'b0;
        end else case (st)
            S_IDLE: if (start) begin
                blk <= '0;
                beat <= '0;
                error <= 1'b0;
                st <= S_AR;
            end
            S_AR: if (m_axi_p_ARREADY) st <= S_R;
            S_R: if (m_axi_p_RVALID) begin
                rec[32'(beat)*AXI_BITS +: AXI_BITS] <= m_axi_p_RDATA;
                if (m_axi_p_RRESP != 2'b00) error <= 1'b1;
                beat <= 32'(beat) == REC_BEATS - 1 ? '0 : beat + 1'b1;
                if (32'(beat) == REC_BEATS - 1) st <= S_DECODE;
            end
            S_DECODE: begin
                if (blk == 0) begin  // the header: magic, version, number of steps, words per step
                    n_steps <= field(rec, 2);
                    if (error || field(rec, 0) != MAGIC || field(rec, 1) != VERSION
                        || field(rec, 3) != STEP_WORDS) begin
                        error <= 1'b1;
                        done <= 1'b1;
                        st <= S_IDLE;
                    end else if (field(rec, 2) == 0) begin
                        done <= 1'b1;
                        st <= S_IDLE;
                    end else begin
                        blk <= 1;
                        st <= S_AR;
                    end
                end else if (field(rec, F_OPCODE) == OP_LINEAR || field(rec, F_OPCODE) == OP_LAYERNORM
                             || field(rec, F_OPCODE) == OP_GELU || field(rec, F_OPCODE) == OP_RESIDUAL
                             || field(rec, F_OPCODE) == OP_ROUTER_TOPK
                             || field(rec, F_OPCODE) == OP_EXPERT_COMBINE) begin
                    is_rt <= field(rec, F_OPCODE) == OP_ROUTER_TOPK;
                    is_cb <= field(rec, F_OPCODE) == OP_EXPERT_COMBINE;
                    is_ln <= field(rec, F_OPCODE) == OP_LAYERNORM;
                    is_ge <= field(rec, F_OPCODE) == OP_GELU || field(rec, F_OPCODE) == OP_RESIDUAL;
                    is_ad <= field(rec, F_OPCODE) == OP_RESIDUAL;
                    st <= S_WAIT_GO;
                end
                else begin
                    step_skip <= 1'b1;
                    st <= blk == n_steps ? S_IDLE : S_AR;
                    done <= blk == n_steps;
                    blk <= blk + 1;
                end
            end
            S_WAIT_GO: if (step_go) begin
                // an expert step's rows are its queue's (q_rows), whatever go_rows says
                if (($signed(field(rec, F_ROWS)) == ROWS_QUEUE ? q_rows : go_rows) == 0) begin
                    step_skip <= 1'b1;
                    st <= blk == n_steps ? S_IDLE : S_AR;
                    done <= blk == n_steps;
                    blk <= blk + 1;
                end else if (is_cb) begin
                    e_rows <= q_rows;
                    cb_start <= 1'b1;
                    cyc <= '0;
                    st <= S_RUN;
                end else if (is_rt) begin
                    e_rows <= go_rows;
                    rt_start <= 1'b1;
                    cyc <= '0;
                    st <= S_RUN;
                end else if (is_ge) begin
                    ge_words <= 32'(step_rows[15:0]) * ((field(rec, F_N) + T_IN - 1) / T_IN);
                    ge_start <= !is_ad;
                    ad_start <= is_ad;
                    cyc <= '0;
                    st <= S_RUN;
                end else if (is_ln) begin
                    e_rows <= 16'(step_rows);
                    ln_g <= w_base + 64'(field(rec, F_W_OFF));
                    ln_b <= w_base + 64'(field(rec, F_B_OFF));
                    ln_start <= 1'b1;
                    cyc <= '0;
                    st <= S_RUN;
                end else begin
                    e_rows <= $signed(field(rec, F_ROWS)) == ROWS_QUEUE ? q_rows : go_rows;
                    e_kt <= 16'(field(rec, F_K_TILES));
                    e_nt <= 16'(field(rec, F_N_TILES));
                    e_waddr <= w_base + 64'(field(rec, F_W_OFF))
                               + 64'(task_id) * 64'(field(rec, F_W_TASK_STRIDE));
                    e_baddr <= $signed(field(rec, F_B_OFF)) != NO_OFFSET  // no bias: any aligned address
                               ? w_base + 64'(field(rec, F_B_OFF)) : w_base;
                    e_bias <= $signed(field(rec, F_B_OFF)) != NO_OFFSET;
                    e_start <= 1'b1;
                    cyc <= '0;
                    st <= S_RUN;
                end
            end
            S_RUN: begin
                cyc <= cyc + 1;
                if (e_err) error <= 1'b1;
                if (is_cb ? cb_done : is_rt ? rt_done : is_ad ? ad_done : is_ge ? ge_done : is_ln ? ln_done : e_done) begin
                    step_done <= 1'b1;
                    step_cycles <= cyc;
                    st <= blk == n_steps ? S_IDLE : S_AR;
                    done <= blk == n_steps;
                    blk <= blk + 1;
                end
            end
            default: st <= S_IDLE;
        endcase
    end

    /* verilator lint_off UNUSEDSIGNAL */  // the engine's busy: the sequencer waits for its done
    logic unused_busy;
    assign unused_busy = e_busy;
    /* verilator lint_on UNUSEDSIGNAL */

    linear_engine #(.T_IN(T_IN), .T_OUT(T_OUT), .WA(WA), .WW(WW), .WSB(WSB), .WACC(WACC), .PACK2(PACK2),
                    .PACK_SHIFT(PACK_SHIFT), .AXI_BITS(AXI_BITS), .TILE_BEATS(TILE_BEATS),
                    .TILE_BYTES(TILE_BYTES), .ROWS_MAX(ROWS_MAX), .KT_MAX(KT_MAX), .NT_MAX(NT_MAX), .NBUF(NBUF),
                    .BSB(BSB), .BW(BW), .B_SHIFT(B_SHIFT), .B_ROUND(B_ROUND), .ACC_SHIFT(ACC_SHIFT),
                    .OW(OW), .O_SHIFT(O_SHIFT), .O_ROUND(O_ROUND), .O_SAT(O_SAT)) engine (
        .clk, .rst, .start(e_start), .rows(e_rows), .k_tiles(e_kt), .n_tiles(e_nt), .w_addr(e_waddr),
        .has_bias(e_bias), .b_addr(e_baddr), .busy(e_busy), .done(e_done), .rd_error(e_err),
        .x_we, .x_addr, .x_data, .out_valid, .out_row, .out_ntile, .out_y, .out_ovf,
        .m_axi_w_ARID, .m_axi_w_ARADDR, .m_axi_w_ARLEN, .m_axi_w_ARSIZE, .m_axi_w_ARBURST, .m_axi_w_ARVALID,
        .m_axi_w_ARREADY, .m_axi_w_RID, .m_axi_w_RLAST, .m_axi_w_RDATA, .m_axi_w_RRESP, .m_axi_w_RVALID,
        .m_axi_w_RREADY);

    accel_gelu #(.W(GE_W), .F(GE_F), .OUT_ROUND(GE_OUT_ROUND), .OUT_SAT(GE_OUT_SAT), .N(GE_N), .STEP(GE_STEP),
                 .EW(GE_EW), .EF(GE_EF), .TABLE(GE_TABLE), .LANES(T_IN), .WORDS_MAX(GE_WORDS_MAX)) gelu (
        .clk, .rst, .start(ge_start), .n_words(ge_words), .done(ge_done), .x_we(ge_x_we), .x_addr(ge_x_addr),
        .x_data(ge_x_data), .out_valid(ge_out_valid), .out_index(ge_out_index), .out_y(ge_out_y),
        .out_ovf(ge_out_ovf));

    accel_add #(.W(WA), .SAT(AD_SAT), .LANES(T_IN), .WORDS_MAX(AD_WORDS_MAX)) add (
        .clk, .rst, .start(ad_start), .n_words(ge_words), .done(ad_done), .x_we(ad_x_we), .x_sel(ad_x_sel),
        .x_addr(ad_x_addr), .x_data(ad_x_data), .out_valid(ad_out_valid), .out_index(ad_out_index),
        .out_y(ad_out_y), .out_ovf(ad_out_ovf));

    logic [15:0] q_token;
    /* verilator lint_off UNUSEDSIGNAL */  // the slot: golden's gate index; the queue carries the gate itself
    logic [7:0] q_slot;
    /* verilator lint_on UNUSEDSIGNAL */
    logic [RT_GW-1:0] q_gate;
    logic [RT_IW-1:0] q_expert;
    assign q_expert = RT_IW'(field(rec, F_EXPERT));
    accel_router #(.E(RT_E), .K(RT_K), .LW(RT_LW), .LFB(RT_LFB), .EW(RT_EW), .EF(RT_EF), .E_ROUND(RT_E_ROUND),
                   .E_SAT(RT_E_SAT), .SW(RT_SW), .SF(RT_SF), .S_ROUND(RT_S_ROUND), .S_SAT(RT_S_SAT), .RW(RT_RW),
                   .RF(RT_RF), .R_ROUND(RT_R_ROUND), .R_SAT(RT_R_SAT), .GW(RT_GW), .GF(RT_GF),
                   .G_ROUND(RT_G_ROUND), .G_SAT(RT_G_SAT), .LGW(RT_LGW), .LGF(RT_LGF), .LOG2E(RT_LOG2E),
                   .EN(RT_EN), .ESTEP(RT_ESTEP), .ETW(RT_ETW), .ETF(RT_ETF), .RN(RT_RN), .RSTEP(RT_RSTEP),
                   .RTW(RT_RTW), .RTF(RT_RTF), .RK(RT_RK), .ETABLE(RT_ETABLE), .RTABLE(RT_RTABLE),
                   .ROWS_MAX(ROWS_MAX), .STAGES(RT_STAGES), .IW(RT_IW)) router (
        .clk, .rst, .start(rt_start), .rows(e_rows), .done(rt_done), .x_we(rt_x_we), .x_addr(rt_x_addr),
        .x_data(rt_x_data), .out_valid(rt_out_valid), .out_token(rt_out_token), .out_idx(rt_out_idx),
        .out_gate(rt_out_gate), .out_ovf(rt_out_ovf), .q_len, .q_expert, .q_index(q_index[$clog2(ROWS_MAX)-1:0]),
        .q_token, .q_slot, .q_gate);

    accel_combine #(.W(WA), .A_ROUND(CB_A_ROUND), .A_SAT(AD_SAT), .GW(RT_GW), .GF(RT_GF),
                    .SUMW(CB_SUMW), .LANES(T_IN), .D(CB_D), .ROWS_MAX(ROWS_MAX), .TW(16)) combine (
        .clk, .rst, .clear(rt_start), .start(cb_start), .rows(e_rows), .done(cb_done), .q_index,
        .q_token, .q_gate, .y_we(cb_y_we), .y_addr(cb_y_addr), .y_data(cb_y_data), .rd_addr(cb_rd_addr),
        .rd_y(cb_rd_y), .rd_ovf(cb_rd_ovf), .ovf(cb_ovf));

    accel_ln #(.D(LN_D), .L(LN_L), .W(LN_W), .F(LN_F), .A_ROUND(LN_A_ROUND), .A_SAT(LN_A_SAT), .BW(LN_BW),
               .BF(LN_BF), .SW(LN_SW), .SF(LN_SF), .S_SAT(LN_S_SAT), .EPS(LN_EPS), .RW(LN_RW), .RF(LN_RF),
               .R_SIGNED(LN_R_SIGNED), .R_ROUND(LN_R_ROUND), .R_SAT(LN_R_SAT), .N(LN_N), .STEP(LN_STEP),
               .EW(LN_EW), .EF(LN_EF), .TABLE(LN_TABLE), .BSB(BSB), .AXI_BITS(AXI_BITS),
               .ROWS_MAX(ROWS_MAX)) ln (
        .clk, .rst, .start(ln_start), .rows(e_rows), .g_addr(ln_g), .b_addr(ln_b), .done(ln_done),
        .x_we(ln_x_we), .x_addr(ln_x_addr), .x_data(ln_x_data), .out_valid(ln_out_valid),
        .out_index(ln_out_index), .out_y(ln_out_y), .out_ovf(ln_out_ovf),
        .m_axi_ARID(m_axi_l_ARID), .m_axi_ARADDR(m_axi_l_ARADDR), .m_axi_ARLEN(m_axi_l_ARLEN),
        .m_axi_ARSIZE(m_axi_l_ARSIZE), .m_axi_ARBURST(m_axi_l_ARBURST), .m_axi_ARVALID(m_axi_l_ARVALID),
        .m_axi_ARREADY(m_axi_l_ARREADY), .m_axi_RID(m_axi_l_RID), .m_axi_RLAST(m_axi_l_RLAST),
        .m_axi_RDATA(m_axi_l_RDATA), .m_axi_RRESP(m_axi_l_RRESP), .m_axi_RVALID(m_axi_l_RVALID),
        .m_axi_RREADY(m_axi_l_RREADY));
endmodule
