// The shared linear unit as a whole: the layer's bias and its weight tiles streamed from DDR over an
// AXI4 read master (weight tiles into ping-pong buffers), the MAC tile (mac_tile.sv) applying each
// tile to every row of an on-chip input buffer, per-row partial sums, and the one requantisation of
// golden `linear` (ARITHMETIC.md): the schedule of kernels.h's linear_unit, in cycles.
//
//   y[r][n] = rq_out(sum_k x[r][k] * W[n][k] + rq_bias(b[n]))   (sums exact, in 64 bits)
//
// The bias is rounded onto the products' grid with its own mode (B_SHIFT, B_ROUND) and starts each
// row's sum on the first pass over a tile group; the last pass range-checks the sum as the
// accumulator type (ACC_SHIFT; a WRAP type: `out_ovf`), rounds it once to the output type (O_SHIFT,
// O_ROUND) and saturates (O_SAT) or flags a WRAP overflow (`out_ovf`), as golden raises.
// W is stored tile-major at w_addr (mtl_moe/layout.py, the one definition of weights.bin's layout):
// T_OUT x T_IN tiles in (output tile outer, input tile inner) order, each tile contiguous (its T_OUT
// rows of T_IN codes of WSB storage bits, the low WW bits signed), zero-padded at the layer's edges
// and padded to TILE_BEATS whole AXI words; tile t = i * k_tiles + j lies at w_addr + t * TILE_BYTES
// and is read as ONE INCR burst of TILE_BEATS beats, beat by beat into the flat tile buffer (code c
// of the tile, row c / T_IN, column c % T_IN, at bits [c*WSB +: WW]: a beat may hold several tile
// rows or part of one). TILE_BEATS and TILE_BYTES come from mtl_moe.layout.TileLayout through
// mtl_moe.rtl.linear_engine_parameters. AXI4 rules: TILE_BEATS <= 256, and TILE_BYTES must divide
// 4 KiB with w_addr TILE_BYTES-aligned, so no tile burst crosses a 4 KiB boundary (checked below).
// Two weight ports (WPORTS = 2, kernels.h's WEIGHT_PORTS, layout.py TileLayout.ports): the matrix is
// two planes, plane p holding beats p * PLANE_BEATS .. of every tile (PLANE_BEATS = TILE_BEATS / 2),
// tile after tile, plane 1 starting at w_addr + tiles * PLANE_BYTES. Master m_axi_w reads the bias,
// then plane 0, one PLANE_BEATS burst per tile; m_axi_w1 (the HLS top's gmem_w1, the same blob)
// reads plane 1 at the same time, so a tile arrives in PLANE_BEATS cycles of two beats each. A
// tile is full when both its parts are in; each port runs up to NBUF tiles ahead on its own.
// n_tiles / k_tiles may cut the layer's edge (N or K not a multiple of the tile): the padded
// weights are zero, so a padded input column adds nothing; outputs n >= N of the last output tile
// (and their out_ovf bits) are don't-care and not stored by the caller.
// b is N elements at b_addr (BSB-bit storage words, the low BW bits signed, AXI_BITS/8-aligned),
// read first (n_tiles * T_OUT values rounded up to whole beats) as one INCR burst, split only where
// it would pass 256 beats or a 4 KiB boundary;
// The input rows are not held here: the engine reads word kb of row r from the caller's feature-map
// buffer (accel_fm.sv, or the test bench's RAM) one word a cycle, a registered read, as it applies a
// tile to the rows.
// then tiles go in (n0, k0) order; tile j+1 loads into the other buffer while tile j is applied to
// the rows (one row a cycle), so a layer takes about bias + first tile + latency
// + (tiles - 1) * max(rows, tile_load) + rows + drain cycles — the formula mtl_moe/perf.py's
// linear() uses, which hw_tests/test_linear_engine.py checks against this RTL. AR handshakes per
// call: the bias bursts (one unless split) + one per tile.
module linear_engine #(
    parameter int T_IN = 16,
    parameter int T_OUT = 16,
    parameter int WA = 32,
    parameter int WW = 16,
    parameter int WSB = 16,           // weight storage bits (one code of weights.bin), WW <= WSB
    parameter int WACC = 58,
    parameter int PACK2 = 0,
    parameter int PACK_SHIFT = 18,
    parameter int AXI_BITS = 256,
    parameter int TILE_BEATS = 16,    // AXI words of one stored tile (mtl_moe.layout.TileLayout)
    parameter int TILE_BYTES = 512,   // TILE_BEATS * AXI_BITS / 8: the stride between tiles
    parameter int WPORTS = 1,         // weight read masters (1: m_axi_w only; 2: m_axi_w1 reads plane 1)
    parameter int ROWS_MAX = 256,
    /* verilator lint_off UNUSEDPARAM */  // k_tiles' bound: the input rows live in the caller's buffer
    parameter int KT_MAX = 64,        // ceil(K / T_IN) at most
    /* verilator lint_on UNUSEDPARAM */
    parameter int NT_MAX = 64,        // ceil(N / T_OUT) at most
    parameter int NBUF = 2,           // weight-tile buffers (a power of two >= 2): tiles requested ahead
    parameter int BSB = 32,           // bias storage bits (an element of weights.bin)
    parameter int BW = 32,            // bias width (signed)
    parameter int B_SHIFT = -14,      // bias grid -> products' grid: shift_round(b, B_SHIFT, B_ROUND)
    parameter int B_ROUND = 2,
    parameter int ACC_SHIFT = 0,      // products' grid -> accumulator grid (floor), range WACC bits
    parameter int OW = 32,            // output width (signed)
    parameter int O_SHIFT = 14,       // products' grid -> output grid, with O_ROUND
    parameter int O_ROUND = 0,
    parameter int O_SAT = 0,          // 1: saturate; 0: wrap and flag out_ovf
    // the second output format, chosen per call by out_logit (the router's logits: golden `router`'s
    // linear to router_logit, kernels.h linear_unit's runtime output format); equal to act's by default
    parameter int LOW = OW,
    parameter int L_SHIFT = O_SHIFT,
    parameter int L_ROUND = O_ROUND,
    parameter int L_SAT = O_SAT,
    // the second input format, chosen per call by in_input (the patch embedding's input type):
    // IN_DF more fractional bits than act, so the products' grid is IN_DF bits finer
    parameter int IN_DF = 0,
    localparam int YW = (LOW > OW) ? LOW : OW  // out_y's lanes: either format, sign-extended
) (
    input  logic clk,
    input  logic rst,
    // control: start with the layer's shape; done pulses once the last row is out
    input  logic start,
    input  logic [15:0] rows,
    input  logic [15:0] k_tiles,      // ceil(K / T_IN)
    input  logic [15:0] n_tiles,      // ceil(N / T_OUT)
    input  logic [63:0] w_addr,       // TILE_BYTES-aligned
    input  logic has_bias,
    input  logic [63:0] b_addr,       // AXI_BITS/8-aligned
    input  logic out_logit,           // this call's outputs in the second format (L_*), else act (O_*)
    input  logic in_input,            // this call's inputs in the second format (IN_DF), else act
    output logic busy,
    output logic done,
    output logic rd_error,            // a read came back with an error response (sticky until start)
    // the input rows, read from a feature-map buffer the caller owns (accel_fm.sv): in a cycle with
    // x_re the engine asks for word x_rd_word of row x_rd_row (x[r][kb*T_IN +: T_IN]) and takes
    // x_rdata the next cycle (a registered read); the caller maps (row, word) to an address (an
    // expert's row through its token queue)
    output logic x_re,
    output logic [15:0] x_rd_row,
    output logic [15:0] x_rd_word,
    input  logic [T_IN*WA-1:0] x_rdata,
    // results: one row of T_OUT outputs a cycle
    output logic out_valid,
    output logic [15:0] out_row,
    output logic [15:0] out_ntile,
    output logic [T_OUT*YW-1:0] out_y,
    output logic [T_OUT-1:0] out_ovf, // per output: the accumulator or a WRAP output overflowed
    // AXI4 read master for the weights
    output logic [0:0] m_axi_w_ARID,
    output logic [63:0] m_axi_w_ARADDR,
    output logic [7:0] m_axi_w_ARLEN,
    output logic [2:0] m_axi_w_ARSIZE,
    output logic [1:0] m_axi_w_ARBURST,
    output logic m_axi_w_ARVALID,
    input  logic m_axi_w_ARREADY,
    /* verilator lint_off UNUSEDSIGNAL */  // one ID; burst lengths are the loader's own counts
    input  logic [0:0] m_axi_w_RID,
    input  logic m_axi_w_RLAST,
    /* verilator lint_on UNUSEDSIGNAL */
    input  logic [AXI_BITS-1:0] m_axi_w_RDATA,
    input  logic [1:0] m_axi_w_RRESP,
    input  logic m_axi_w_RVALID,
    output logic m_axi_w_RREADY,
    // the second weight master (WPORTS = 2): plane 1 of the tiles; idle with one port
    output logic [0:0] m_axi_w1_ARID,
    output logic [63:0] m_axi_w1_ARADDR,
    output logic [7:0] m_axi_w1_ARLEN,
    output logic [2:0] m_axi_w1_ARSIZE,
    output logic [1:0] m_axi_w1_ARBURST,
    output logic m_axi_w1_ARVALID,
    input  logic m_axi_w1_ARREADY,
    /* verilator lint_off UNUSEDSIGNAL */  // one ID; burst lengths are the loader's own counts
    input  logic [0:0] m_axi_w1_RID,
    input  logic m_axi_w1_RLAST,
    /* verilator lint_on UNUSEDSIGNAL */
    input  logic [AXI_BITS-1:0] m_axi_w1_RDATA,
    input  logic [1:0] m_axi_w1_RRESP,
    input  logic m_axi_w1_RVALID,
    output logic m_axi_w1_RREADY
);
    localparam int CODE_BITS = T_OUT * T_IN * WSB;     // one tile's codes as stored
    localparam int BUF_BITS = TILE_BEATS * AXI_BITS;   // one stored tile, padding included
    localparam int RA = ROWS_MAX > 1 ? $clog2(ROWS_MAX) : 1;  // row index into the sums
    localparam int PLANE_BEATS = TILE_BEATS / WPORTS;  // beats of a tile each master reads
    localparam int PLANE_BYTES = TILE_BYTES / WPORTS;
    localparam int BCW = PLANE_BEATS > 1 ? $clog2(PLANE_BEATS) : 1;  // beat counter of a tile part
    localparam int VPB = AXI_BITS / BSB;               // bias values per beat
    localparam int N_MAX = NT_MAX * T_OUT;
    localparam int NA = N_MAX > 1 ? $clog2(N_MAX) : 1;
    localparam longint AMAX = (64'sd1 <<< (WACC - 1)) - 1, AMIN = -(64'sd1 <<< (WACC - 1));
    localparam longint OMAX = (64'sd1 <<< (OW - 1)) - 1, OMIN = -(64'sd1 <<< (OW - 1));
    localparam longint LMAX = (64'sd1 <<< (LOW - 1)) - 1, LMIN = -(64'sd1 <<< (LOW - 1));
    `include "fx_round.svh"

    // the layout's invariants (mtl_moe.layout.TileLayout; linear_engine_parameters checks the same)
    initial begin
        if (NBUF < 2 || (NBUF & (NBUF - 1)) != 0)
            $error("linear_engine: NBUF = %0d tile buffers must be a power of two >= 2", NBUF);
        if (WW > WSB || AXI_BITS % WSB != 0)
            $error("linear_engine: %0d-bit weights in %0d-bit codes must fill %0d-bit AXI words whole",
                   WW, WSB, AXI_BITS);
        if (TILE_BEATS < 1 || BUF_BITS < CODE_BITS || BUF_BITS - AXI_BITS >= CODE_BITS)
            $error("linear_engine: TILE_BEATS = %0d is not the AXI words of a %0d x %0d tile of %0d-bit codes",
                   TILE_BEATS, T_OUT, T_IN, WSB);
        if (WPORTS < 1 || WPORTS > 2 || TILE_BEATS % WPORTS != 0)
            $error("linear_engine: WPORTS = %0d weight masters (1 or 2) must split %0d-beat tiles evenly",
                   WPORTS, TILE_BEATS);
        if (TILE_BYTES * 8 != BUF_BITS)
            $error("linear_engine: TILE_BYTES = %0d != TILE_BEATS * AXI_BITS / 8", TILE_BYTES);
        if (TILE_BEATS > 256 || 4096 % TILE_BYTES != 0)
            $error("linear_engine: a tile burst of %0d beats / %0d bytes breaks AXI4 (<= 256 beats, and the tile must divide 4 KiB so an aligned tile never crosses a 4 KiB boundary)",
                   TILE_BEATS, TILE_BYTES);
    end

    localparam int BI = NBUF > 2 ? $clog2(NBUF) : 1;  // buffer index: tile j in buffer j % NBUF
    logic [BUF_BITS-1:0] wbuf [NBUF];  // flat: code c of the tile at bits [c*WSB +: WSB]
    logic [BSB-1:0] bbuf [N_MAX];     // the layer's bias
    logic [31:0] nbb;                 // bias beats of this layer (0 without bias)
    logic [NBUF-1:0] full;          // buffer b holds a loaded tile not yet applied (every part in)
    logic [NBUF-1:0] part [2];      // buffer b holds part p of its tile (part 1: WPORTS = 2)
    logic running;
    logic [31:0] total;             // tiles in this layer

    // ---- loader: per master p, the request for its part of tile rq_j[p], data into ld_j[p] % NBUF
    // The read request of a tile goes out as soon as its buffer is free, before the data of the
    // ones before it has all arrived (AXI reads are pipelined): up to NBUF tiles in flight or
    // waiting, so a memory whose first-beat latency exceeds a tile's pass is still paid once per
    // layer, not once per tile, once NBUF covers it (2: ping-pong, enough only when the latency
    // hides behind one pass); data arrives in request order. One burst per tile and master.
    logic [31:0] rq_j [2], ld_j [2];
    logic [BCW-1:0] r_beat [2];     // beat of master p's part of tile ld_j[p] arriving next
    logic ld_fill [2];              // the last beat of that part arrives this cycle
    logic rv [2];
    logic [AXI_BITS-1:0] rdata [2];
    logic bias_rq, bias_rx;           // the bias is still being requested / received
    assign rv[0] = m_axi_w_RVALID;
    assign rv[1] = WPORTS > 1 && m_axi_w1_RVALID;
    assign rdata[0] = m_axi_w_RDATA;
    assign rdata[1] = m_axi_w1_RDATA;
    assign ld_fill[0] = running && rv[0] && !bias_rx && 32'(r_beat[0]) == PLANE_BEATS - 1;
    assign ld_fill[1] = running && rv[1] && 32'(r_beat[1]) == PLANE_BEATS - 1;

    logic [31:0] bq_cnt, rb_cnt;      // bias beats requested, received
    assign bias_rq = bq_cnt < nbb;
    assign bias_rx = rb_cnt < nbb;
    // the next bias burst: the rest of the bias, at most 256 beats and not past a 4 KiB boundary
    logic [63:0] b_next;
    logic [31:0] b_page, b_len;
    assign b_next = b_addr + 64'(bq_cnt) * 64'(AXI_BITS / 8);
    assign b_page = (32'd4096 - 32'(b_next[11:0])) / (AXI_BITS / 8);
    always_comb begin
        b_len = nbb - bq_cnt;
        if (b_len > 256) b_len = 256;
        if (b_len > b_page) b_len = b_page;
    end
    logic tile_rq [2];                // master p may request its part of tile rq_j[p]
    for (genvar p = 0; p < 2; p++) begin : g_rq
        assign tile_rq[p] = running && p < WPORTS && rq_j[p] < total && rq_j[p] < ld_j[p] + NBUF
                         && !part[p][BI'(rq_j[p])];
    end
    assign m_axi_w_ARID = '0;
    assign m_axi_w_ARLEN = bias_rq ? 8'(b_len - 1) : 8'(PLANE_BEATS - 1);
    assign m_axi_w_ARSIZE = 3'($clog2(AXI_BITS / 8));
    assign m_axi_w_ARBURST = 2'b01;  // INCR
    assign m_axi_w_ARVALID = running && (bias_rq || tile_rq[0]);
    assign m_axi_w_ARADDR = bias_rq ? b_next  // plane 0's part of tile t = i * k_tiles + j
                          : w_addr + 64'(rq_j[0]) * 64'(PLANE_BYTES);
    assign m_axi_w_RREADY = 1'b1;
    assign m_axi_w1_ARID = '0;
    assign m_axi_w1_ARLEN = 8'(PLANE_BEATS - 1);
    assign m_axi_w1_ARSIZE = 3'($clog2(AXI_BITS / 8));
    assign m_axi_w1_ARBURST = 2'b01;  // INCR
    assign m_axi_w1_ARVALID = tile_rq[1];
    assign m_axi_w1_ARADDR = w_addr + (64'(total) + 64'(rq_j[1])) * 64'(PLANE_BYTES);  // plane 1
    assign m_axi_w1_RREADY = 1'b1;

`ifndef SYNTHESIS
    always_ff @(posedge clk)
        if (start && (w_addr % 64'(TILE_BYTES) != 0 || b_addr % 64'(AXI_BITS / 8) != 0))
            $error("linear_engine: w_addr %h must be %0d-aligned (a tile must not cross 4 KiB), b_addr %h %0d-aligned",
                   w_addr, TILE_BYTES, b_addr, AXI_BITS / 8);
`endif

    always_ff @(posedge clk) begin
        if (rst || start) begin
            for (int p = 0; p < 2; p++) begin
                rq_j[p] <= '0;
                ld_j[p] <= '0;
                r_beat[p] <= '0;
            end
            bq_cnt <= '0;
            rb_cnt <= '0;
        end else if (running) begin
            if (m_axi_w_ARVALID && m_axi_w_ARREADY && bias_rq) bq_cnt <= bq_cnt + b_len;
            else if (m_axi_w_ARVALID && m_axi_w_ARREADY) rq_j[0] <= rq_j[0] + 1;
            if (m_axi_w1_ARVALID && m_axi_w1_ARREADY) rq_j[1] <= rq_j[1] + 1;
            if (rv[0] && bias_rx) begin
                for (int v = 0; v < VPB; v++)
                    if (rb_cnt * VPB + v < N_MAX) bbuf[NA'(rb_cnt * VPB + v)] <= rdata[0][v*BSB +: BSB];
                rb_cnt <= rb_cnt + 1;
            end
            for (int p = 0; p < 2; p++)
                if (rv[p] && !(p == 0 && bias_rx)) begin  // beat r of part p: tile beat p * PLANE_BEATS + r
                    wbuf[BI'(ld_j[p])][(p * PLANE_BEATS + int'(r_beat[p]))*AXI_BITS +: AXI_BITS] <= rdata[p];
                    r_beat[p] <= 32'(r_beat[p]) == PLANE_BEATS - 1 ? '0 : r_beat[p] + 1'b1;
                    if (ld_fill[p]) ld_j[p] <= ld_j[p] + 1;
                end
        end
    end

    // ---- compute: pass over the rows with tile cp_j (buffer cp_j % NBUF) --------------------
    logic [31:0] cp_j;
    logic [15:0] cp_n, cp_kb, cp_r;
    logic cp_active;
    // stage 0 -> 1: input row read, tile buffer selected
    logic v1, first1, last1, end1;
    logic [BI-1:0] sel1;
    logic [15:0] r1, n1;
    assign x_re = cp_active;
    assign x_rd_row = cp_r;
    assign x_rd_word = cp_kb;
    logic [T_OUT*T_IN*WW-1:0] w1;   // the MAC tile's w[t][u] at bits [(t*T_IN+u)*WW +: WW]
    logic cp_free;                  // the pass that used buffer sel1 has fed its last row to the MACs
    assign cp_free = v1 && end1;

    always_comb
        for (int c = 0; c < T_OUT * T_IN; c++) w1[c*WW +: WW] = wbuf[sel1][c*WSB +: WW];

    always_ff @(posedge clk) begin
        if (rst || start) begin
            cp_active <= 1'b0;
            cp_j <= '0;
            cp_n <= '0;
            cp_kb <= '0;
            v1 <= 1'b0;
        end else begin
            v1 <= 1'b0;
            if (running && !cp_active && cp_j < total && full[BI'(cp_j)]) begin
                cp_active <= 1'b1;
                cp_r <= '0;
            end
            if (cp_active) begin
                v1 <= 1'b1;
                sel1 <= BI'(cp_j);
                r1 <= cp_r;
                n1 <= cp_n;
                first1 <= cp_kb == 0;
                last1 <= cp_kb == k_tiles - 1;
                end1 <= cp_r == rows - 1;
                if (cp_r == rows - 1) begin  // next tile: straight on if it is loaded (no bubble)
                    cp_active <= cp_j + 1 < total && full[BI'(cp_j + 1)];
                    cp_r <= '0;
                    cp_j <= cp_j + 1;
                    if (cp_kb == k_tiles - 1) begin
                        cp_kb <= '0;
                        cp_n <= cp_n + 1'b1;
                    end else cp_kb <= cp_kb + 1'b1;
                end else cp_r <= cp_r + 1'b1;
            end
        end
    end

    always_ff @(posedge clk) begin
        if (rst || start) begin
            part[0] <= '0;
            part[1] <= '0;
        end else begin
            for (int p = 0; p < 2; p++)
                if (ld_fill[p]) part[p][BI'(ld_j[p])] <= 1'b1;
            if (cp_free) begin
                part[0][sel1] <= 1'b0;
                part[1][sel1] <= 1'b0;
            end
        end
    end
    assign full = part[0] & (WPORTS > 1 ? part[1] : '1);

    // ---- MAC tile (two stages), then accumulate into the row's sums -------------------------
    logic mac_valid;
    logic [T_OUT*WACC-1:0] dot;
    mac_tile #(.T_IN(T_IN), .T_OUT(T_OUT), .WA(WA), .WW(WW), .WACC(WACC), .PACK2(PACK2),
               .PACK_SHIFT(PACK_SHIFT)) mac (
        .clk, .rst, .in_valid(v1), .clear(1'b1), .x(x_rdata), .w(w1), .out_valid(mac_valid), .acc(dot));

    logic [1:0] first_d, last_d;    // metadata through the MAC tile's two stages
    logic [15:0] r_d [2], n_d [2];
    always_ff @(posedge clk) begin
        first_d <= {first_d[0], first1};
        last_d <= {last_d[0], last1};
        r_d[0] <= r1;
        r_d[1] <= r_d[0];
        n_d[0] <= n1;
        n_d[1] <= n_d[0];
    end

    logic lg;                         // this call's output format: the second (L_*)
    int df;                           // this call's input format: IN_DF finer products, else 0
    logic [T_OUT*64-1:0] accm [ROWS_MAX];  // partial sums, 64-bit (golden range-checks the total)
    always_ff @(posedge clk) begin
        if (rst || start) out_valid <= 1'b0;
        else begin
            out_valid <= mac_valid && last_d[1];
            if (mac_valid) begin
                logic [T_OUT*64-1:0] s;
                for (int t = 0; t < T_OUT; t++) begin
                    longint bi, sv, al, q;
                    bi = has_bias ? shift_round(longint'($signed(bbuf[NA'(32'(n_d[1]) * T_OUT + t)][BW-1:0])),
                                                B_SHIFT - df, B_ROUND) : 64'sd0;
                    sv = (first_d[1] ? bi : longint'(accm[r_d[1][RA-1:0]][t*64 +: 64]))
                       + longint'($signed(dot[t*WACC +: WACC]));
                    s[t*64 +: 64] = sv;
                    al = shift_round(sv, ACC_SHIFT + df, 0);
                    if (last_d[1] && !lg) begin
                        q = shift_round(sv, O_SHIFT + df, O_ROUND);
                        out_ovf[t] <= (al > AMAX) || (al < AMIN) || (O_SAT == 0 && (q > OMAX || q < OMIN));
                        out_y[t*YW +: YW] <= YW'($signed(OW'((O_SAT != 0 && q > OMAX) ? OMAX
                                                              : (O_SAT != 0 && q < OMIN) ? OMIN : q)));
                    end
                    if (last_d[1] && lg) begin
                        q = shift_round(sv, L_SHIFT + df, L_ROUND);
                        out_ovf[t] <= (al > AMAX) || (al < AMIN) || (L_SAT == 0 && (q > LMAX || q < LMIN));
                        out_y[t*YW +: YW] <= YW'($signed(LOW'((L_SAT != 0 && q > LMAX) ? LMAX
                                                               : (L_SAT != 0 && q < LMIN) ? LMIN : q)));
                    end
                end
                if (last_d[1]) begin
                    out_row <= r_d[1];
                    out_ntile <= n_d[1];
                end else accm[r_d[1][RA-1:0]] <= s;
            end
        end
    end

    // ---- run control ----------------------------------------------------------------------
    logic drained, v_pipe_empty, v1_d;  // v1_d: the MAC tile's first stage, one cycle behind v1
    always_ff @(posedge clk) v1_d <= v1;
    assign v_pipe_empty = !v1_d;
    assign drained = cp_j == total && !cp_active && !v1 && !mac_valid;
    always_ff @(posedge clk) begin
        done <= 1'b0;
        if (rst) running <= 1'b0;
        else if (start) begin
            running <= 1'b1;
            lg <= out_logit;
            df <= in_input ? IN_DF : 0;
            total <= 32'(k_tiles) * 32'(n_tiles);
            nbb <= has_bias ? (32'(n_tiles) * T_OUT * BSB + AXI_BITS - 1) / AXI_BITS : 32'd0;
        end else if (running && drained && !out_valid && v_pipe_empty) begin
            running <= 1'b0;
            done <= 1'b1;
        end
    end
    assign busy = running;
    always_ff @(posedge clk)
        if (rst || start) rd_error <= 1'b0;
        else if ((m_axi_w_RVALID && m_axi_w_RRESP != 2'b00) || (rv[1] && m_axi_w1_RRESP != 2'b00)) rd_error <= 1'b1;
endmodule
