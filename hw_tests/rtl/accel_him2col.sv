// A task head's 3x3 im2col of one band (kernels.h head_im2col, the same schedule), word-wide: output
// pixel p = r * w + x of the band's n rows, cols word m of its 9 c codes in (channel, ky, kx) order
// (the patch embedding's), from band rows r .. r + 2 (band row 0 is input row y0 - 1, zero at the
// map's top and bottom edges as the DDR reader writes them); columns outside [0, w) are zero.
//
//   band: pixel (r, x) word q (channels q T_IN .. + T_IN - 1) at (r * w + x) * cw + q, cw = ceil(c / T_IN)
//   cols: pixel p word m at p * kw9 + m, kw9 = ceil(9 c / T_IN)
//
// Band word q of a pixel read at its 9 taps t = 3 ky + kx holds exactly the pixel's codes
// 9 q T_IN .. + 9 T_IN - 1 (code (q T_IN + e) * 9 + t is lane e of tap t), i.e. its cols words
// 9 q .. 9 q + 8: a group of 9 cycles per (pixel, band word), one band word read a cycle into tap[t]
// (a registered read, the data the next cycle), and, while the next group reads, the group's up to
// 9 cols words written one a cycle from `full` (tap copied when its last word lands): lane l of word
// m is full[(m T_IN + l) % 9][(m T_IN + l) / 9], a 9-way mux per lane selected by m. Words
// 9 q + m >= kw9 (c not a multiple of T_IN) are not written: their codes are channels >= c, zero in
// the band; their cycles are spent as kernels.h's loop spends them.
//
// Cycles start -> done: 9 (n w cw + 1) + 4 — kernels.h's (groups + 1) x 9 iterations (the last
// group's words go out in the drain group) plus two setup cycles (the word counts, the band's row
// stride: addresses are kept by increments, no multiplier in the loop), the read's and the write
// port's register (the performance model's head_im2col: (n w ceil(c / T_IN) + 1) x 9). Ports are the
// feature-map banks' (accel_fm.sv): a read port on the band buffer (band_re / band_raddr
// combinational, the word the next cycle) and a registered write port on HID (whole words), so the
// sequencer can point them at its banks.
module accel_him2col #(
    parameter int T_IN = 16,          // codes a feature-map word
    parameter int WA = 32,            // act width
    parameter int BA = 12,            // band buffer address bits
    parameter int HA = 12             // HID address bits
) (
    input  logic clk,
    input  logic rst,
    input  logic start,
    input  logic [15:0] c,            // input channels
    input  logic [15:0] w,            // map width
    input  logic [15:0] n,            // output rows of the band
    output logic busy,
    output logic done,
    output logic band_re,
    output logic [BA-1:0] band_raddr,
    input  logic [T_IN*WA-1:0] band_rdata,
    output logic hid_we,
    output logic [HA-1:0] hid_waddr,
    output logic [T_IN*WA-1:0] hid_wdata
);
    // the call's shape, latched at start; its word counts and the band's row stride in two setup
    // cycles (the divisions by the constant T_IN and the one multiply happen there only)
    logic [15:0] c_r, w_r, n_r;
    logic [1:0] setup;
    logic [31:0] cw, kw9, pixels, wcw;

    // read side (kernels.h's loop counter): the group being read, pixel p = (r, x), band word q, tap
    // t; addresses by increments: pb = p cw, pk = p kw9, q9 = 9 q
    logic reading;
    logic [31:0] p, x, q, pb, pk, q9;
    logic [3:0] t;
    logic [1:0] ky;
    logic signed [2:0] dx;
    always_comb begin
        ky = t < 3 ? 2'd0 : t < 6 ? 2'd1 : 2'd2;
        dx = 3'(int'(t) - 3 * int'(ky) - 1);
    end
    wire signed [32:0] xx = $signed({1'b0, x}) + 33'(dx);
    wire in_row = xx >= 0 && xx < $signed({17'b0, w_r});
    // tap t of pixel p's word q: band pixel (r + ky, x + dx) = p + ky w + dx
    wire [31:0] row_off = ky == 2'd0 ? 32'd0 : ky == 2'd1 ? wcw : wcw << 1;
    wire [31:0] col_off = dx < 0 ? -cw : dx > 0 ? cw : 32'd0;
    assign band_re = reading && in_row;
    assign band_raddr = BA'(pb + q + row_off + col_off);
    wire last_tap = t == 4'd8, last_word = q == cw - 1, last_px = p == pixels - 1;

    // stage 1: the word lands in tap[t1]; at a group's last tap, full and the group's cols words
    logic v1, rd1, lastg1;
    logic [3:0] t1;
    logic [31:0] po1, pn1;
    logic [T_IN*WA-1:0] tap [8];
    logic [T_IN*WA-1:0] full [9];
    wire [T_IN*WA-1:0] word1 = rd1 ? band_rdata : '0;

    // write side: the previous group's words m = 0 .. 8, word m only if m < wpn
    logic writing, wlast;
    logic [3:0] wm;
    logic [31:0] wpo, wpn;
    logic [T_IN*WA-1:0] cols [9];
    always_comb
        for (int m = 0; m < 9; m++)
            for (int l = 0; l < T_IN; l++)
                cols[m][l*WA +: WA] = full[(m * T_IN + l) % 9][((m * T_IN + l) / 9)*WA +: WA];

    assign busy = setup != 0 || reading || v1 || writing;
    always_ff @(posedge clk) begin
        done <= 1'b0;
        hid_we <= 1'b0;
        v1 <= 1'b0;
        if (rst) begin
            setup <= 2'd0;
            reading <= 1'b0;
            writing <= 1'b0;
        end else if (start) begin
            c_r <= c;
            w_r <= w;
            n_r <= n;
            setup <= n != 0 && w != 0 && c != 0 ? 2'd1 : 2'd0;
            done <= n == 0 || w == 0 || c == 0;
            {p, x, q, t, pb, pk, q9} <= '0;
        end else begin
            if (setup == 2'd1) begin
                cw <= (32'(c_r) + T_IN - 1) / T_IN;
                kw9 <= (9 * 32'(c_r) + T_IN - 1) / T_IN;
                pixels <= 32'(n_r) * 32'(w_r);
                setup <= 2'd2;
            end
            if (setup == 2'd2) begin
                wcw <= 32'(w_r) * cw;
                setup <= 2'd0;
                reading <= 1'b1;
            end
            if (reading) begin  // stage 0: tap t of group (p, q)
                v1 <= 1'b1;
                rd1 <= in_row;
                t1 <= t;
                po1 <= pk + q9;
                pn1 <= kw9 - q9 < 9 ? kw9 - q9 : 9;
                lastg1 <= last_px && last_word;
                t <= last_tap ? '0 : t + 1;
                if (last_tap) begin
                    q <= last_word ? '0 : q + 1;
                    q9 <= last_word ? '0 : q9 + 9;
                    if (last_word) begin
                        p <= p + 1;
                        pb <= pb + cw;
                        pk <= pk + kw9;
                        x <= x == 32'(w_r) - 1 ? '0 : x + 1;
                        if (last_px) reading <= 1'b0;
                    end
                end
            end
            if (writing) begin  // the previous group's word wm (from full before this edge's update)
                hid_we <= 32'(wm) < wpn;
                hid_waddr <= HA'(wpo + 32'(wm));
                hid_wdata <= cols[wm];
                wm <= wm + 1;
                if (wm == 4'd8) begin
                    writing <= 1'b0;
                    done <= wlast;
                end
            end
            if (v1) begin  // stage 1
                if (t1 < 4'd8) tap[t1[2:0]] <= word1;
                if (t1 == 4'd8) begin
                    for (int j = 0; j < 8; j++) full[j] <= tap[j];
                    full[8] <= word1;
                    wpo <= po1;
                    wpn <= pn1;
                    wlast <= lastg1;
                    wm <= '0;
                    writing <= 1'b1;
                end
            end
        end
    end
endmodule
