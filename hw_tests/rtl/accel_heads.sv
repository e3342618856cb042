// The task head's controller (kernels.h heads, one program step at a time): the units that move a
// head's maps between DDR and the borrowed on-chip buffers (accel_hrd, accel_hwr, accel_him2col,
// accel_hup) driven in kernels.h's order, one call after another (heads() has no DATAFLOW), so that a
// step costs what mtl_moe/perf.py PerfModel.head_step_cost prices: the sum of its calls.
//
// A step is what a head record of program.bin names (the sequencer calls this module per record):
//   - grid = 1 (head_store_grid): the features H (token rows, D_WORDS words a row) -> scratch 0,
//     pixel-major, through the writer (first = the class token's rows, sw = D_WORDS);
//   - grid = 0, pass `layer` of the task's head (head_schedule; the tables below):
//     conv (kind 0), per band of P_BAND rows (the last one partial), as kernels.h head_conv:
//       1. the reader: rows y0 - 1 .. y0 + n (3x3, the halo, zero rows outside the map) into the band
//          buffer (QKV: the qkv_* port 2), or rows y0 .. y0 + n - 1 of a 1x1 straight into HID (the
//          cols: a pixel's channels are its row);
//       2. 3x3: accel_him2col, QKV (qkv_* port 1) -> HID (cols, pixel p word m at p kw9 + m);
//       3. a request to the shared linear engine (eng_*: n w rows, k_tiles ceil(k k c / T_IN),
//          n_tiles ceil(cout / T_OUT), the task's weights at w_base + OFF_HEAD_W, its bias at w_base +
//          OFF_HEAD_B): the engine is the sequencer's, OUTSIDE this module; it reads HID and stores F
//          (lu_store: code n of row r at word r ceil(cout / T_IN) + n / T_IN), then answers eng_done;
//       4. the writer from F (f_* port 1): ReLU if P_RELU, to scratch (pixel-major) or the prediction
//          (channel-major, WSTRB for runs inside a word);
//     upsample (kind 1): one accel_hup call, its row buffers on QKV (row 0) and F (row 1), the
//     <1, 1> instance or (P_LFH, P_LFW not 1, 1) the <RESIZE_LFH, RESIZE_LFW> one, as kernels.h's two
//     template instances.
// Sources and destinations: P_SRC / P_DST 0 scratch 0 (scratch_base), 1 scratch 1 (scratch_base +
// SCRATCH_BYTES), 2 the prediction (pred_base). Channel counts 0 in P_CIN / P_COUT mean the task's
// OUT_CH (program.bin's head records carry n = 0 and w_task_stride 0, hence the per-task tables).
// Every table comes from mtl_moe/rtl_heads.py (the export's head_schedule, weights.json, config):
// 16-bit fields, entry i at [i*16 +: 16]; the offsets 32-bit at [(t N_OPS + i)*32 +: 32].
//
// Timing: each call's start is a register pulse (as a sequencer's), set in the cycle the previous
// call reports done, with the call's port values registered at the same edge and held while it runs;
// so a call follows the one before after one cycle, plus two cycles at the step's start (the tables'
// entry, then the derived sizes) and one at each band's start. One AXI read master and one write
// master (the io port's), muxed to the unit the step is running (only one runs at a time).
module accel_heads #(
    parameter int AXI_BITS = 256,
    parameter int SB = 32,
    parameter int WA = 32,
    parameter int T_IN = 16,
    parameter int T_OUT = 16,
    parameter int G = 8,
    parameter int BURST = 128,
    parameter int RD_OUTSTANDING = 2,
    parameter int WR_OUTSTANDING = 2,
    parameter int FA = 10,            // address bits of every borrowed buffer's port
    parameter int A_ROUND = 0,
    parameter int RESIZE_LFH = 1,     // the final resize's factors (kernels.h HEAD_RESIZE_LFH / LFW)
    parameter int RESIZE_LFW = 1,
    parameter int N_OPS = 1,
    parameter int N_TASKS = 1,
    parameter logic [N_OPS*16-1:0] P_KIND = '0,
    parameter logic [N_OPS*16-1:0] P_K = '0,
    parameter logic [N_OPS*16-1:0] P_RELU = '0,
    parameter logic [N_OPS*16-1:0] P_BAND = '0,
    parameter logic [N_OPS*16-1:0] P_CIN = '0,
    parameter logic [N_OPS*16-1:0] P_COUT = '0,
    parameter logic [N_OPS*16-1:0] P_H = '0,
    parameter logic [N_OPS*16-1:0] P_W = '0,
    parameter logic [N_OPS*16-1:0] P_LFH = '0,
    parameter logic [N_OPS*16-1:0] P_LFW = '0,
    parameter logic [N_OPS*16-1:0] P_SRC = '0,
    parameter logic [N_OPS*16-1:0] P_DST = '0,
    parameter logic [N_TASKS*16-1:0] OUT_CH = '0,
    parameter logic [N_TASKS*N_OPS*32-1:0] OFF_HEAD_W = '0,
    parameter logic [N_TASKS*N_OPS*32-1:0] OFF_HEAD_B = '0,
    parameter int GRID_C = 64,        // n_embd
    parameter int GRID_H = 8,
    parameter int GRID_W = 8,
    parameter int GRID_FIRST = 1,     // the class token's rows before the patches in H
    parameter int D_WORDS = 4,        // ceil(n_embd / T_IN): H's words a row
    parameter longint SCRATCH_BYTES = 4096
) (
    input  logic clk,
    input  logic rst,
    input  logic start,
    input  logic grid,                // head_store_grid, else pass `layer`
    input  logic [7:0] layer,
    input  logic [7:0] task_id,
    input  logic [63:0] pred_base,    // byte addresses: the image's prediction, scratch map 0
    input  logic [63:0] scratch_base,
    input  logic [63:0] w_base,       // weights.bin
    output logic busy,
    output logic done,
    output logic rd_error,            // sticky until the next step's start: a unit's read / write came
                                      // back not OKAY
    output logic wr_error,
    // the shared linear engine's request
    output logic eng_start,
    output logic [15:0] eng_rows,
    output logic [15:0] eng_k_tiles,
    output logic [15:0] eng_n_tiles,
    output logic [15:0] eng_cout,     // F's layout: ceil(eng_cout / T_IN) words a row
    output logic [63:0] eng_w_addr,
    output logic [63:0] eng_b_addr,
    output logic eng_has_bias,
    input  logic eng_done,
    // QKV (the band, the upsample's row 0): port 1 reads, port 2 reads or writes
    output logic [FA-1:0] qkv_addr1,
    input  logic [T_IN*WA-1:0] qkv_q1,
    output logic [FA-1:0] qkv_addr2,
    output logic qkv_we,
    output logic [T_IN-1:0] qkv_strb,
    output logic [T_IN*WA-1:0] qkv_d,
    input  logic [T_IN*WA-1:0] qkv_q2,
    // HID (the cols): written here, read by the engine
    output logic hid_we,
    output logic [FA-1:0] hid_addr,
    output logic [T_IN-1:0] hid_strb,
    output logic [T_IN*WA-1:0] hid_d,
    // F (the engine's outputs, the upsample's row 1): port 1 reads, port 2 reads or writes
    output logic [FA-1:0] f_addr1,
    input  logic [T_IN*WA-1:0] f_q1,
    output logic [FA-1:0] f_addr2,
    output logic f_we,
    output logic [T_IN-1:0] f_strb,
    output logic [T_IN*WA-1:0] f_d,
    input  logic [T_IN*WA-1:0] f_q2,
    // H (the features): read
    output logic [FA-1:0] h_addr,
    input  logic [T_IN*WA-1:0] h_q,
    // AXI4 io port
    output logic [0:0] m_axi_ARID,
    output logic [63:0] m_axi_ARADDR,
    output logic [7:0] m_axi_ARLEN,
    output logic [2:0] m_axi_ARSIZE,
    output logic [1:0] m_axi_ARBURST,
    output logic m_axi_ARVALID,
    input  logic m_axi_ARREADY,
    input  logic [0:0] m_axi_RID,
    input  logic m_axi_RLAST,
    input  logic [AXI_BITS-1:0] m_axi_RDATA,
    input  logic [1:0] m_axi_RRESP,
    input  logic m_axi_RVALID,
    output logic m_axi_RREADY,
    output logic [0:0] m_axi_AWID,
    output logic [63:0] m_axi_AWADDR,
    output logic [7:0] m_axi_AWLEN,
    output logic [2:0] m_axi_AWSIZE,
    output logic [1:0] m_axi_AWBURST,
    output logic m_axi_AWVALID,
    input  logic m_axi_AWREADY,
    output logic [AXI_BITS-1:0] m_axi_WDATA,
    output logic [AXI_BITS/8-1:0] m_axi_WSTRB,
    output logic m_axi_WLAST,
    output logic m_axi_WVALID,
    input  logic m_axi_WREADY,
    input  logic [0:0] m_axi_BID,
    input  logic [1:0] m_axi_BRESP,
    input  logic m_axi_BVALID,
    output logic m_axi_BREADY
);
    localparam bit HAS_RESIZE = !(RESIZE_LFH == 1 && RESIZE_LFW == 1);
    localparam int NU = 3;            // AXI owners: 0 the conv's reader / writer, 1 hup <1, 1>, 2 the resize's

    function automatic logic [15:0] f16(input logic [N_OPS*16-1:0] t, input logic [7:0] i);
        return t[32'(i) * 16 +: 16];
    endfunction

    // ---- the step: its constants (LOAD), the derived sizes (SETUP), then the calls ----
    typedef enum logic [3:0] {IDLE, LOAD, SETUP, GRIDW, BAND, RD, IC, LU, WR, UP} state_t;
    state_t st;
    logic is_grid, kind_up, k3, relu, to_pred, use_b;
    logic [15:0] c, h, w, nb, cout, y0, n;
    logic [31:0] w_off, b_off;
    logic [1:0] src_id, dst_id;
    logic [63:0] src_a, dst_a;
    logic [1:0] owner;
    logic [15:0] kt, nt, cwo;                       // k_tiles, n_tiles, F's words a row
    wire [15:0] out_ch = OUT_CH[32'(task_id) * 16 +: 16];
    wire [15:0] n_c = y0 + nb <= h ? nb : h - y0;    // the band's rows (BAND)
    wire last_band = 32'(y0) + 32'(n) >= 32'(h);

    // the units' start pulses and port values (registers)
    logic hrd_go, hwr_go, ic_go, up_go;
    logic signed [15:0] rd_y0;
    logic [15:0] rd_n, wr_c, wr_h, wr_w, wr_y0, wr_n, wr_first, wr_sw;
    logic wr_pred, wr_relu;
    logic [63:0] wr_base;
    logic hrd_done, hwr_done, ic_done, upa_done, upb_done;
    wire up_done = use_b ? upb_done : upa_done;

    always_ff @(posedge clk) begin
        {hrd_go, hwr_go, ic_go, up_go, eng_start, done} <= '0;
        if (rst) begin
            st <= IDLE;
            busy <= 1'b0;
        end else case (st)
            IDLE: if (start) begin
                st <= LOAD;
                busy <= 1'b1;
                is_grid <= grid;
                kind_up <= f16(P_KIND, layer) != 0;
                k3 <= f16(P_K, layer) == 3;
                relu <= f16(P_RELU, layer) != 0;
                c <= f16(P_CIN, layer) != 0 ? f16(P_CIN, layer) : out_ch;
                cout <= f16(P_COUT, layer) != 0 ? f16(P_COUT, layer) : out_ch;
                h <= f16(P_H, layer);
                w <= f16(P_W, layer);
                nb <= f16(P_BAND, layer);
                use_b <= HAS_RESIZE && !(f16(P_LFH, layer) == 1 && f16(P_LFW, layer) == 1);
                src_id <= 2'(f16(P_SRC, layer));
                dst_id <= 2'(f16(P_DST, layer));
                w_off <= OFF_HEAD_W[(32'(task_id) * N_OPS + 32'(layer)) * 32 +: 32];
                b_off <= OFF_HEAD_B[(32'(task_id) * N_OPS + 32'(layer)) * 32 +: 32];
            end
            LOAD: begin
                st <= SETUP;
                src_a <= src_id == 0 ? scratch_base : scratch_base + 64'(SCRATCH_BYTES);
                dst_a <= dst_id == 2 ? pred_base : dst_id == 0 ? scratch_base : scratch_base + 64'(SCRATCH_BYTES);
                to_pred <= dst_id == 2;
                kt <= 16'(((k3 ? 32'd9 : 32'd1) * 32'(c) + T_IN - 1) / T_IN);
                nt <= 16'((32'(cout) + T_OUT - 1) / T_OUT);
                cwo <= 16'((32'(cout) + T_IN - 1) / T_IN);
                owner <= is_grid || !kind_up ? 2'd0 : use_b ? 2'd2 : 2'd1;
                y0 <= '0;
            end
            SETUP: if (is_grid) begin
                st <= GRIDW;
                hwr_go <= 1'b1;
                {wr_pred, wr_relu, wr_c, wr_h, wr_w, wr_y0, wr_n} <=
                    {1'b0, 1'b0, 16'(GRID_C), 16'(GRID_H), 16'(GRID_W), 16'd0, 16'(GRID_H)};
                {wr_first, wr_sw, wr_base} <= {16'(GRID_FIRST), 16'(D_WORDS), scratch_base};
            end else if (kind_up) begin
                st <= UP;
                up_go <= 1'b1;
            end else st <= BAND;
            GRIDW: if (hwr_done) begin
                st <= IDLE;
                busy <= 1'b0;
                done <= 1'b1;
            end
            BAND: begin                             // a band's calls, starting with the reader
                st <= RD;
                hrd_go <= 1'b1;
                n <= n_c;
                rd_y0 <= k3 ? $signed(y0) - 16'sd1 : $signed(y0);
                rd_n <= k3 ? n_c + 16'd2 : n_c;
                eng_rows <= 16'(32'(n_c) * 32'(w));
            end
            RD: if (hrd_done) begin
                if (k3) begin
                    st <= IC;
                    ic_go <= 1'b1;
                end else begin
                    st <= LU;
                    eng_start <= 1'b1;
                end
            end
            IC: if (ic_done) begin
                st <= LU;
                eng_start <= 1'b1;
            end
            LU: if (eng_done) begin
                st <= WR;
                hwr_go <= 1'b1;
                {wr_pred, wr_relu, wr_c, wr_h, wr_w, wr_y0, wr_n} <= {to_pred, relu, cout, h, w, y0, n};
                {wr_first, wr_sw, wr_base} <= {16'd0, cwo, dst_a};
            end
            WR: if (hwr_done) begin
                if (last_band) begin
                    st <= IDLE;
                    busy <= 1'b0;
                    done <= 1'b1;
                end else begin
                    st <= BAND;
                    y0 <= y0 + n;
                end
            end
            UP: if (up_done) begin
                st <= IDLE;
                busy <= 1'b0;
                done <= 1'b1;
            end
            default: st <= IDLE;
        endcase
    end
    assign eng_k_tiles = kt;
    assign eng_n_tiles = nt;
    assign eng_cout = cout;
    assign eng_w_addr = w_base + 64'(w_off);
    assign eng_b_addr = w_base + 64'(b_off);
    assign eng_has_bias = 1'b1;

    // ---- the AXI owners: each unit's masters, muxed by `owner` ----
    logic [0:0] ar_id [NU];
    logic [63:0] ar_addr [NU];
    logic [7:0] ar_len [NU];
    logic [2:0] ar_size [NU];
    logic [1:0] ar_burst [NU];
    logic ar_valid [NU], r_ready [NU];
    logic [0:0] aw_id [NU];
    logic [63:0] aw_addr [NU];
    logic [7:0] aw_len [NU];
    logic [2:0] aw_size [NU];
    logic [1:0] aw_burst [NU];
    logic aw_valid [NU], w_last [NU], w_valid [NU], b_ready [NU];
    logic [AXI_BITS-1:0] w_data [NU];
    logic [AXI_BITS/8-1:0] w_strb [NU];
    logic [NU-1:0] sel;
    always_comb for (int u = 0; u < NU; u++) sel[u] = owner == 2'(u);
    wire unused_sel = &{1'b0, sel};  // sel[2]: the resize's, none without one
    assign m_axi_ARID = ar_id[owner];
    assign m_axi_ARADDR = ar_addr[owner];
    assign m_axi_ARLEN = ar_len[owner];
    assign m_axi_ARSIZE = ar_size[owner];
    assign m_axi_ARBURST = ar_burst[owner];
    assign m_axi_ARVALID = ar_valid[owner];
    assign m_axi_RREADY = r_ready[owner];
    assign m_axi_AWID = aw_id[owner];
    assign m_axi_AWADDR = aw_addr[owner];
    assign m_axi_AWLEN = aw_len[owner];
    assign m_axi_AWSIZE = aw_size[owner];
    assign m_axi_AWBURST = aw_burst[owner];
    assign m_axi_AWVALID = aw_valid[owner];
    assign m_axi_WDATA = w_data[owner];
    assign m_axi_WSTRB = w_strb[owner];
    assign m_axi_WLAST = w_last[owner];
    assign m_axi_WVALID = w_valid[owner];
    assign m_axi_BREADY = b_ready[owner];

    // ---- the conv's (and the grid's) reader and writer, im2col ----
    logic hrd_we;
    logic [FA-1:0] hrd_waddr;
    logic [T_IN-1:0] hrd_wstrb;
    logic [T_IN*WA-1:0] hrd_wdata;
    logic rd_err0, wr_err0, rd_erra, wr_erra, rd_errb, wr_errb;
    /* verilator lint_off UNUSEDSIGNAL */
    logic hrd_busy, hwr_busy, ic_busy, upa_busy, upb_busy;
    logic hwr_re;
    logic [15:0] st_x, st_q, st_lane;
    /* verilator lint_on UNUSEDSIGNAL */
    accel_hrd #(.AXI_BITS(AXI_BITS), .SB(SB), .WA(WA), .T_IN(T_IN), .G(G), .BURST(BURST),
                .OUTSTANDING(RD_OUTSTANDING), .FA(FA)) rd (
        .clk, .rst, .start(hrd_go), .c, .h, .w, .y0(rd_y0), .n(rd_n), .base(src_a), .busy(hrd_busy),
        .done(hrd_done), .rd_error(rd_err0),
        .m_axi_ARID(ar_id[0]), .m_axi_ARADDR(ar_addr[0]), .m_axi_ARLEN(ar_len[0]), .m_axi_ARSIZE(ar_size[0]),
        .m_axi_ARBURST(ar_burst[0]), .m_axi_ARVALID(ar_valid[0]), .m_axi_ARREADY(m_axi_ARREADY && sel[0]),
        .m_axi_RID, .m_axi_RLAST, .m_axi_RDATA, .m_axi_RRESP, .m_axi_RVALID(m_axi_RVALID && sel[0]),
        .m_axi_RREADY(r_ready[0]),
        .fm_we(hrd_we), .fm_waddr(hrd_waddr), .fm_wstrb(hrd_wstrb), .fm_wdata(hrd_wdata));

    logic [FA-1:0] hwr_raddr;
    accel_hwr #(.AXI_BITS(AXI_BITS), .SB(SB), .WA(WA), .T_IN(T_IN), .G(G), .BURST(BURST),
                .OUTSTANDING(WR_OUTSTANDING), .FA(FA)) wrt (
        .clk, .rst, .start(hwr_go), .to_pred(wr_pred), .relu(wr_relu), .fresh(1'b0), .c(wr_c), .h(wr_h),
        .w(wr_w), .y0(wr_y0), .n(wr_n), .first(wr_first), .sw(wr_sw), .base(wr_base), .busy(hwr_busy),
        .done(hwr_done), .wr_error(wr_err0), .fm_re(hwr_re), .fm_raddr(hwr_raddr),
        .fm_rdata(is_grid ? h_q : f_q1), .st_x, .st_q, .st_lane,
        .m_axi_AWID(aw_id[0]), .m_axi_AWADDR(aw_addr[0]), .m_axi_AWLEN(aw_len[0]), .m_axi_AWSIZE(aw_size[0]),
        .m_axi_AWBURST(aw_burst[0]), .m_axi_AWVALID(aw_valid[0]), .m_axi_AWREADY(m_axi_AWREADY && sel[0]),
        .m_axi_WDATA(w_data[0]), .m_axi_WSTRB(w_strb[0]), .m_axi_WLAST(w_last[0]), .m_axi_WVALID(w_valid[0]),
        .m_axi_WREADY(m_axi_WREADY && sel[0]), .m_axi_BID, .m_axi_BRESP, .m_axi_BVALID(m_axi_BVALID && sel[0]),
        .m_axi_BREADY(b_ready[0]));

    logic ic_re;                                    // the band RAM reads every cycle
    logic [FA-1:0] ic_raddr;
    logic ic_we;
    logic [FA-1:0] ic_waddr;
    logic [T_IN*WA-1:0] ic_wdata;
    accel_him2col #(.T_IN(T_IN), .WA(WA), .BA(FA), .HA(FA)) im2col (
        .clk, .rst, .start(ic_go), .c, .w, .n, .busy(ic_busy), .done(ic_done), .band_re(ic_re),
        .band_raddr(ic_raddr), .band_rdata(qkv_q1), .hid_we(ic_we), .hid_waddr(ic_waddr), .hid_wdata(ic_wdata));
    wire unused_ic = &{1'b0, ic_re};

    // ---- the bilinear passes: <1, 1> and the final resize's instance ----
    logic [FA-1:0] a_r0a1, a_r0a2, a_r1a1, a_r1a2, b_r0a1, b_r0a2, b_r1a1, b_r1a2;
    logic a_r0we, a_r1we, b_r0we, b_r1we;
    logic [T_IN-1:0] a_r0s, a_r1s, b_r0s, b_r1s;
    logic [T_IN*WA-1:0] a_r0d, a_r1d, b_r0d, b_r1d;
    accel_hup #(.AXI_BITS(AXI_BITS), .SB(SB), .WA(WA), .T_IN(T_IN), .G(G), .BURST(BURST),
                .RD_OUTSTANDING(RD_OUTSTANDING), .WR_OUTSTANDING(WR_OUTSTANDING), .FA(FA), .LFH(1), .LFW(1),
                .A_ROUND(A_ROUND)) upa (
        .clk, .rst, .start(up_go && !use_b), .to_pred, .c, .h, .w, .src(src_a), .dst(dst_a),
        .busy(upa_busy), .done(upa_done), .rd_error(rd_erra), .wr_error(wr_erra),
        .r0_addr1(a_r0a1), .r0_q1(qkv_q1), .r0_addr2(a_r0a2), .r0_we(a_r0we), .r0_strb(a_r0s), .r0_d(a_r0d),
        .r0_q2(qkv_q2), .r1_addr1(a_r1a1), .r1_q1(f_q1), .r1_addr2(a_r1a2), .r1_we(a_r1we), .r1_strb(a_r1s),
        .r1_d(a_r1d), .r1_q2(f_q2),
        .m_axi_ARID(ar_id[1]), .m_axi_ARADDR(ar_addr[1]), .m_axi_ARLEN(ar_len[1]), .m_axi_ARSIZE(ar_size[1]),
        .m_axi_ARBURST(ar_burst[1]), .m_axi_ARVALID(ar_valid[1]), .m_axi_ARREADY(m_axi_ARREADY && sel[1]),
        .m_axi_RID, .m_axi_RLAST, .m_axi_RDATA, .m_axi_RRESP, .m_axi_RVALID(m_axi_RVALID && sel[1]),
        .m_axi_RREADY(r_ready[1]),
        .m_axi_AWID(aw_id[1]), .m_axi_AWADDR(aw_addr[1]), .m_axi_AWLEN(aw_len[1]), .m_axi_AWSIZE(aw_size[1]),
        .m_axi_AWBURST(aw_burst[1]), .m_axi_AWVALID(aw_valid[1]), .m_axi_AWREADY(m_axi_AWREADY && sel[1]),
        .m_axi_WDATA(w_data[1]), .m_axi_WSTRB(w_strb[1]), .m_axi_WLAST(w_last[1]), .m_axi_WVALID(w_valid[1]),
        .m_axi_WREADY(m_axi_WREADY && sel[1]), .m_axi_BID, .m_axi_BRESP, .m_axi_BVALID(m_axi_BVALID && sel[1]),
        .m_axi_BREADY(b_ready[1]));
    generate if (HAS_RESIZE) begin : g_resize
        accel_hup #(.AXI_BITS(AXI_BITS), .SB(SB), .WA(WA), .T_IN(T_IN), .G(G), .BURST(BURST),
                    .RD_OUTSTANDING(RD_OUTSTANDING), .WR_OUTSTANDING(WR_OUTSTANDING), .FA(FA), .LFH(RESIZE_LFH),
                    .LFW(RESIZE_LFW), .A_ROUND(A_ROUND)) upb (
            .clk, .rst, .start(up_go && use_b), .to_pred, .c, .h, .w, .src(src_a), .dst(dst_a),
            .busy(upb_busy), .done(upb_done), .rd_error(rd_errb), .wr_error(wr_errb),
            .r0_addr1(b_r0a1), .r0_q1(qkv_q1), .r0_addr2(b_r0a2), .r0_we(b_r0we), .r0_strb(b_r0s),
            .r0_d(b_r0d), .r0_q2(qkv_q2), .r1_addr1(b_r1a1), .r1_q1(f_q1), .r1_addr2(b_r1a2), .r1_we(b_r1we),
            .r1_strb(b_r1s), .r1_d(b_r1d), .r1_q2(f_q2),
            .m_axi_ARID(ar_id[2]), .m_axi_ARADDR(ar_addr[2]), .m_axi_ARLEN(ar_len[2]),
            .m_axi_ARSIZE(ar_size[2]), .m_axi_ARBURST(ar_burst[2]), .m_axi_ARVALID(ar_valid[2]),
            .m_axi_ARREADY(m_axi_ARREADY && sel[2]), .m_axi_RID, .m_axi_RLAST, .m_axi_RDATA, .m_axi_RRESP,
            .m_axi_RVALID(m_axi_RVALID && sel[2]), .m_axi_RREADY(r_ready[2]),
            .m_axi_AWID(aw_id[2]), .m_axi_AWADDR(aw_addr[2]), .m_axi_AWLEN(aw_len[2]),
            .m_axi_AWSIZE(aw_size[2]), .m_axi_AWBURST(aw_burst[2]), .m_axi_AWVALID(aw_valid[2]),
            .m_axi_AWREADY(m_axi_AWREADY && sel[2]), .m_axi_WDATA(w_data[2]), .m_axi_WSTRB(w_strb[2]),
            .m_axi_WLAST(w_last[2]), .m_axi_WVALID(w_valid[2]), .m_axi_WREADY(m_axi_WREADY && sel[2]),
            .m_axi_BID, .m_axi_BRESP, .m_axi_BVALID(m_axi_BVALID && sel[2]), .m_axi_BREADY(b_ready[2]));
    end else begin : g_no_resize
        assign {upb_busy, upb_done, rd_errb, wr_errb} = '0;
        assign {b_r0a1, b_r0a2, b_r1a1, b_r1a2, b_r0we, b_r1we, b_r0s, b_r1s, b_r0d, b_r1d} = '0;
        assign {ar_id[2], ar_addr[2], ar_len[2], ar_size[2], ar_burst[2], ar_valid[2], r_ready[2]} = '0;
        assign {aw_id[2], aw_addr[2], aw_len[2], aw_size[2], aw_burst[2], aw_valid[2]} = '0;
        assign {w_data[2], w_strb[2], w_last[2], w_valid[2], b_ready[2]} = '0;
    end endgenerate
    // the units' flags are sticky until their own start (a call); the step's until the step's start
    // (and the units' own, so that a flag set with the last call's done shows with the step's)
    logic rd_seen, wr_seen;
    wire rd_now = rd_err0 | rd_erra | rd_errb, wr_now = wr_err0 | wr_erra | wr_errb;
    always_ff @(posedge clk)
        if (rst || (st == IDLE && start)) {rd_seen, wr_seen} <= '0;
        else {rd_seen, wr_seen} <= {rd_seen | rd_now, wr_seen | wr_now};
    assign rd_error = rd_seen | rd_now;
    assign wr_error = wr_seen | wr_now;

    // ---- the borrowed buffers' ports, by what the step runs ----
    wire up_on = owner != 0;
    always_comb begin
        // QKV: port 1 im2col's band read or the upsample's row 0; port 2 the reader (3x3) or row 0
        qkv_addr1 = !up_on ? ic_raddr : use_b ? b_r0a1 : a_r0a1;
        qkv_addr2 = !up_on ? hrd_waddr : use_b ? b_r0a2 : a_r0a2;
        qkv_we = !up_on ? hrd_we && k3 : use_b ? b_r0we : a_r0we;
        qkv_strb = !up_on ? hrd_wstrb : use_b ? b_r0s : a_r0s;
        qkv_d = !up_on ? hrd_wdata : use_b ? b_r0d : a_r0d;
        // HID: im2col's cols (3x3) or the reader (1x1)
        hid_we = !up_on && (k3 ? ic_we : hrd_we);
        hid_addr = k3 ? ic_waddr : hrd_waddr;
        hid_strb = k3 ? '1 : hrd_wstrb;
        hid_d = k3 ? ic_wdata : hrd_wdata;
        // F: port 1 the writer's read or the upsample's row 1; port 2 row 1
        f_addr1 = !up_on ? hwr_raddr : use_b ? b_r1a1 : a_r1a1;
        f_addr2 = use_b ? b_r1a2 : a_r1a2;
        f_we = up_on && (use_b ? b_r1we : a_r1we);
        f_strb = use_b ? b_r1s : a_r1s;
        f_d = use_b ? b_r1d : a_r1d;
        h_addr = hwr_raddr;
    end
endmodule
