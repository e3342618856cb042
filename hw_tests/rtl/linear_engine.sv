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
// W is N x K row-major at w_addr, b N elements at b_addr (BSB-bit storage words, the low BW bits
// signed), as weights.bin stores them. The bias is read first (one single-beat burst per beat);
// then tiles go in (n0, k0) order; tile j+1 loads into the other buffer while tile j is applied to
// the rows (one row a cycle), so a layer takes about bias + first tile + latency
// + (tiles - 1) * max(rows, tile_load) + rows + drain cycles — the formula mtl_moe/perf.py's
// linear() uses, which hw_tests/test_linear_engine.py checks against this RTL.
// One tile row is BPR = T_IN*WW/AXI_BITS beats, read as one INCR burst per row (T_OUT bursts a tile).
module linear_engine #(
    parameter int T_IN = 16,
    parameter int T_OUT = 16,
    parameter int WA = 32,
    parameter int WW = 16,
    parameter int WACC = 58,
    parameter int PACK2 = 0,
    parameter int PACK_SHIFT = 18,
    parameter int AXI_BITS = 256,
    parameter int ROWS_MAX = 256,
    parameter int KT_MAX = 64,        // K / T_IN at most
    parameter int NT_MAX = 64,        // N / T_OUT at most
    parameter int BSB = 32,           // bias storage bits (an element of weights.bin)
    parameter int BW = 32,            // bias width (signed)
    parameter int B_SHIFT = -14,      // bias grid -> products' grid: shift_round(b, B_SHIFT, B_ROUND)
    parameter int B_ROUND = 2,
    parameter int ACC_SHIFT = 0,      // products' grid -> accumulator grid (floor), range WACC bits
    parameter int OW = 32,            // output width (signed)
    parameter int O_SHIFT = 14,       // products' grid -> output grid, with O_ROUND
    parameter int O_ROUND = 0,
    parameter int O_SAT = 0           // 1: saturate; 0: wrap and flag out_ovf
) (
    input  logic clk,
    input  logic rst,
    // control: start with the layer's shape; done pulses once the last row is out
    input  logic start,
    input  logic [15:0] rows,
    input  logic [15:0] k_tiles,      // K / T_IN
    input  logic [15:0] n_tiles,      // N / T_OUT
    input  logic [63:0] w_addr,
    input  logic has_bias,
    input  logic [63:0] b_addr,       // AXI_BITS/8-aligned
    output logic busy,
    output logic done,
    output logic rd_error,            // a read came back with an error response (sticky until start)
    // input buffer write port (filled before start): word r * KT_MAX + kb = x[r][kb*T_IN +: T_IN]
    input  logic x_we,
    input  logic [$clog2(ROWS_MAX*KT_MAX)-1:0] x_addr,
    input  logic [T_IN*WA-1:0] x_data,
    // results: one row of T_OUT outputs a cycle
    output logic out_valid,
    output logic [15:0] out_row,
    output logic [15:0] out_ntile,
    output logic [T_OUT*OW-1:0] out_y,
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
    output logic m_axi_w_RREADY
);
    localparam int ROW_BITS = T_IN * WW;
    localparam int BPR = ROW_BITS / AXI_BITS;          // beats per tile row
    localparam int ROW_BYTES = ROW_BITS / 8;
    localparam int XA = $clog2(ROWS_MAX * KT_MAX);
    localparam int RA = ROWS_MAX > 1 ? $clog2(ROWS_MAX) : 1;  // row index into the sums
    localparam int TW = T_OUT > 1 ? $clog2(T_OUT) : 1;       // tile row counters
    localparam int PW = BPR > 1 ? $clog2(BPR) : 1;
    localparam int VPB = AXI_BITS / BSB;               // bias values per beat
    localparam int N_MAX = NT_MAX * T_OUT;
    localparam int NA = N_MAX > 1 ? $clog2(N_MAX) : 1;
    localparam longint AMAX = (64'sd1 <<< (WACC - 1)) - 1, AMIN = -(64'sd1 <<< (WACC - 1));
    localparam longint OMAX = (64'sd1 <<< (OW - 1)) - 1, OMIN = -(64'sd1 <<< (OW - 1));
    `include "fx_round.svh"

    initial begin
        if (BPR < 1 || BPR * AXI_BITS != ROW_BITS)
            $error("linear_engine: a tile row (T_IN*WW = %0d bits) must be whole AXI beats of %0d",
                   ROW_BITS, AXI_BITS);
    end

    logic [T_IN*WA-1:0] xmem [ROWS_MAX*KT_MAX];
    always_ff @(posedge clk) if (x_we) xmem[x_addr] <= x_data;

    logic [ROW_BITS-1:0] wbuf [2][T_OUT];
    logic [BSB-1:0] bbuf [N_MAX];     // the layer's bias
    logic [31:0] nbb;                 // bias beats of this layer (0 without bias)
    logic [1:0] full;               // buffer b holds a loaded tile not yet applied
    logic running;
    logic [31:0] total;             // tiles in this layer

    // ---- loader: requests for tile rq_j, data into buffer ld_j[0] -------------------------
    // The read requests of the next tile go out as soon as its buffer is free, before the data of
    // this one has all arrived (AXI reads are pipelined), so the memory's latency is paid once per
    // layer, not once per tile; data arrives in request order.
    logic [31:0] rq_j, ld_j;
    logic [15:0] rq_n, rq_kb;       // position of the tile being requested
    logic [TW-1:0] ar_cnt, r_row;
    logic [PW-1:0] r_part;
    logic ld_fill;                  // the last beat of tile ld_j arrives this cycle
    assign ld_fill = running && m_axi_w_RVALID && !bias_rx && 32'(r_row) == T_OUT - 1
                     && 32'(r_part) == BPR - 1;

    logic [31:0] bq_cnt, rb_cnt;      // bias beats requested, received
    logic bias_rq, bias_rx;           // the bias is still being requested / received
    assign bias_rq = bq_cnt < nbb;
    assign bias_rx = rb_cnt < nbb;
    assign m_axi_w_ARID = '0;
    assign m_axi_w_ARLEN = bias_rq ? 8'd0 : 8'(BPR - 1);
    assign m_axi_w_ARSIZE = 3'($clog2(AXI_BITS / 8));
    assign m_axi_w_ARBURST = 2'b01;  // INCR
    assign m_axi_w_ARVALID = running && (bias_rq || (rq_j < total && rq_j <= ld_j + 1 && !full[rq_j[0]]));
    assign m_axi_w_ARADDR = bias_rq ? b_addr + 64'(bq_cnt) * 64'(AXI_BITS / 8)
                          : w_addr + ((64'(rq_n) * 64'(T_OUT) + 64'(ar_cnt)) * 64'(k_tiles) + 64'(rq_kb))
                                     * 64'(ROW_BYTES);
    assign m_axi_w_RREADY = 1'b1;

    always_ff @(posedge clk) begin
        if (rst || start) begin
            rq_j <= '0;
            rq_n <= '0;
            rq_kb <= '0;
            ar_cnt <= '0;
            ld_j <= '0;
            r_row <= '0;
            r_part <= '0;
            bq_cnt <= '0;
            rb_cnt <= '0;
        end else if (running) begin
            if (m_axi_w_ARVALID && m_axi_w_ARREADY && bias_rq) bq_cnt <= bq_cnt + 1;
            else if (m_axi_w_ARVALID && m_axi_w_ARREADY) begin
                if (32'(ar_cnt) == T_OUT - 1) begin
                    ar_cnt <= '0;
                    rq_j <= rq_j + 1;
                    if (rq_kb == k_tiles - 1) begin
                        rq_kb <= '0;
                        rq_n <= rq_n + 1'b1;
                    end else rq_kb <= rq_kb + 1'b1;
                end else ar_cnt <= ar_cnt + 1'b1;
            end
            if (m_axi_w_RVALID && bias_rx) begin
                for (int v = 0; v < VPB; v++)
                    if (rb_cnt * VPB + v < N_MAX) bbuf[NA'(rb_cnt * VPB + v)] <= m_axi_w_RDATA[v*BSB +: BSB];
                rb_cnt <= rb_cnt + 1;
            end else if (m_axi_w_RVALID) begin
                wbuf[ld_j[0]][r_row][r_part*AXI_BITS +: AXI_BITS] <= m_axi_w_RDATA;
                if (32'(r_part) == BPR - 1) begin
                    r_part <= '0;
                    r_row <= 32'(r_row) == T_OUT - 1 ? '0 : r_row + 1'b1;
                end else r_part <= r_part + 1'b1;
            end
            if (ld_fill) ld_j <= ld_j + 1;
        end
    end

    // ---- compute: pass over the rows with tile cp_j (buffer cp_j[0]) ------------------------
    logic [31:0] cp_j;
    logic [15:0] cp_n, cp_kb, cp_r;
    logic cp_active;
    // stage 0 -> 1: input row read, tile buffer selected
    logic v1, first1, last1, end1, sel1;
    logic [15:0] r1, n1;
    logic [T_IN*WA-1:0] x1;
    logic [T_OUT*ROW_BITS-1:0] w1;
    logic cp_free;                  // the pass that used buffer sel1 has fed its last row to the MACs
    assign cp_free = v1 && end1;

    always_comb
        for (int t = 0; t < T_OUT; t++) w1[t*ROW_BITS +: ROW_BITS] = wbuf[sel1][t];

    always_ff @(posedge clk) begin
        if (rst || start) begin
            cp_active <= 1'b0;
            cp_j <= '0;
            cp_n <= '0;
            cp_kb <= '0;
            v1 <= 1'b0;
        end else begin
            v1 <= 1'b0;
            if (running && !cp_active && cp_j < total && full[cp_j[0]]) begin
                cp_active <= 1'b1;
                cp_r <= '0;
            end
            if (cp_active) begin
                v1 <= 1'b1;
                x1 <= xmem[XA'(32'(cp_r) * KT_MAX + 32'(cp_kb))];
                sel1 <= cp_j[0];
                r1 <= cp_r;
                n1 <= cp_n;
                first1 <= cp_kb == 0;
                last1 <= cp_kb == k_tiles - 1;
                end1 <= cp_r == rows - 1;
                if (cp_r == rows - 1) begin  // next tile: straight on if it is loaded (no bubble)
                    cp_active <= cp_j + 1 < total && full[~cp_j[0]];
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
        if (rst || start) full <= '0;
        else begin
            if (ld_fill) full[ld_j[0]] <= 1'b1;
            if (cp_free) full[sel1] <= 1'b0;
        end
    end

    // ---- MAC tile (two stages), then accumulate into the row's sums -------------------------
    logic mac_valid;
    logic [T_OUT*WACC-1:0] dot;
    mac_tile #(.T_IN(T_IN), .T_OUT(T_OUT), .WA(WA), .WW(WW), .WACC(WACC), .PACK2(PACK2),
               .PACK_SHIFT(PACK_SHIFT)) mac (
        .clk, .rst, .in_valid(v1), .clear(1'b1), .x(x1), .w(w1), .out_valid(mac_valid), .acc(dot));

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
                                                B_SHIFT, B_ROUND) : 64'sd0;
                    sv = (first_d[1] ? bi : longint'(accm[r_d[1][RA-1:0]][t*64 +: 64]))
                       + longint'($signed(dot[t*WACC +: WACC]));
                    s[t*64 +: 64] = sv;
                    al = shift_round(sv, ACC_SHIFT, 0);
                    q = shift_round(sv, O_SHIFT, O_ROUND);
                    if (last_d[1]) begin
                        out_ovf[t] <= (al > AMAX) || (al < AMIN) || (O_SAT == 0 && (q > OMAX || q < OMIN));
                        out_y[t*OW +: OW] <= OW'((O_SAT != 0 && q > OMAX) ? OMAX : (O_SAT != 0 && q < OMIN) ? OMIN : q);
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
        else if (m_axi_w_RVALID && m_axi_w_RRESP != 2'b00) rd_error <= 1'b1;
endmodule
