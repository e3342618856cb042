// The task heads' row reader (kernels.h head_read_rows): rows [y0, y0 + n) of a (c, h, w) head
// feature map in DDR into fm words. DDR side: pixel-major, pixel (y, x) = PW = ceil(c / IO_PER) AXI
// words from byte base + (y * w + x) * PW * BYTES, code k of the pixel in word k / IO_PER, lane
// k % IO_PER, SB storage bits each (sign-extended act codes, little-endian). fm side (the write
// port of whatever bank the sequencer points it at: QKV's band, HID's cols, a row buffer of
// accel_hup): pixel (r, x) of the band, word j = codes j T_IN .. + T_IN - 1 at address
// (r * w + x) * CW + j, CW = ceil(c / T_IN); lanes k >= c are 0, and rows outside [0, h) (the 3x3
// conv's padding) are written as zero words.
//
// Schedule (kernels.h's loop, what mtl_moe/perf.py _io_read counts: read latency + max(trip, arrive)):
//   - AR: the in-range rows are one contiguous run of words (rows y .. y + 1 follow each other), so
//     they go out as INCR bursts of up to BURST beats, split where one would cross 4 KiB, back to
//     back while fewer than OUTSTANDING bursts have their last beat still to come; the first AR in
//     the start cycle itself (nothing to wait for: the address is the ports');
//   - the loop: trip = n w S steps, S = max(PW IO_PER, CW T_IN) / G steps a pixel (kernels.h
//     head_px_steps), G = gcd(IO_PER, T_IN) codes a step (a step's codes lie in one AXI beat and one
//     fm word); a step whose codes start a beat of an in-range row takes that beat straight off R
//     (RREADY only then: it waits while RVALID is low), the others take the held beat; a step that
//     fills an fm word's last G lanes writes the word (registered: the write port's we/addr/data
//     change on the step's edge). The steps of the rows outside the map (zero words, no beat) are a
//     second pointer's: a cycle takes a data step when it can, else a zero step, so the zero rows
//     fill the cycles the data steps wait for beats, above the map or below it (kernels.h's one loop
//     would run the rows below after the beats: latency + arrive + their steps when the beats set
//     the pace). The steps start with the first R beat (or at once when no row is in range), as the
//     model counts the first-beat latency before the loop's trip: rows above the map (y0 < 0) are
//     not run during the latency;
//   - done (one pulse, registered) on the last step's edge, with the last fm word's write.
// So start -> done = the AR's way to the first beat (the memory's latency + its register stages),
// then max(trip, the beats' arrival) steps.
module accel_hrd #(
    parameter int AXI_BITS = 256,
    parameter int SB = 32,            // storage bits of one act code in DDR (8 * OUT_BYTES)
    parameter int WA = 32,            // act width: a lane of an fm word, WA <= SB
    parameter int T_IN = 16,
    parameter int G = 8,              // codes a step: gcd(IO_PER, T_IN) (kernels.h HEAD_G)
    parameter int BURST = 128,        // beats of one burst: min(256, 4096 / (AXI_BITS / 8))
    parameter int OUTSTANDING = 2,    // read bursts in flight at most (gmem_io num_read_outstanding)
    parameter int FA = 10             // fm address bits
) (
    input  logic clk,
    input  logic rst,
    input  logic start,
    input  logic [15:0] c,            // channels of the map
    input  logic [15:0] h,            // rows of the map
    input  logic [15:0] w,            // pixels a row
    input  logic signed [15:0] y0,    // first row read (may be < 0: zero rows)
    input  logic [15:0] n,            // rows read (y0 + n may pass h: zero rows)
    input  logic [63:0] base,         // byte address of the map's pixel (0, 0), AXI_BITS/8-aligned
    output logic busy,
    output logic done,
    output logic rd_error,            // a read came back with an error response (sticky until start)
    // AXI4 read master (the io port)
    output logic [0:0] m_axi_ARID,
    output logic [63:0] m_axi_ARADDR,
    output logic [7:0] m_axi_ARLEN,
    output logic [2:0] m_axi_ARSIZE,
    output logic [1:0] m_axi_ARBURST,
    output logic m_axi_ARVALID,
    input  logic m_axi_ARREADY,
    /* verilator lint_off UNUSEDSIGNAL */  // one ID
    input  logic [0:0] m_axi_RID,
    /* verilator lint_on UNUSEDSIGNAL */
    input  logic m_axi_RLAST,
    input  logic [AXI_BITS-1:0] m_axi_RDATA,
    input  logic [1:0] m_axi_RRESP,
    input  logic m_axi_RVALID,
    output logic m_axi_RREADY,
    // fm write port
    output logic fm_we,
    output logic [FA-1:0] fm_waddr,
    output logic [T_IN-1:0] fm_wstrb,
    output logic [T_IN*WA-1:0] fm_wdata
);
    localparam int IO_PER = AXI_BITS / SB;          // codes in one beat
    localparam int BYTES = AXI_BITS / 8;
    localparam int OW = $clog2(OUTSTANDING + 1);
    initial begin
        if (AXI_BITS % SB != 0 || SB % 8 != 0) $error("accel_hrd: a beat must hold whole-byte codes");
        if (WA > SB) $error("accel_hrd: act width %0d exceeds its storage %0d", WA, SB);
        if (IO_PER % G != 0 || T_IN % G != 0) $error("accel_hrd: G = %0d must divide IO_PER and T_IN", G);
    end

    // ---- the call's sizes, from the ports (the start cycle) and registered ----
    logic [31:0] pw_i, cw_i, s_i, ya_i, nb_i, rows_i;
    logic [63:0] a0_i;
    always_comb begin
        logic signed [31:0] lo, hi;
        pw_i = (32'(c) + IO_PER - 1) / IO_PER;
        cw_i = (32'(c) + T_IN - 1) / T_IN;
        s_i = (pw_i * IO_PER > cw_i * T_IN ? pw_i * IO_PER : cw_i * T_IN) / G;
        lo = 32'(y0) < 0 ? 0 : 32'(y0);
        hi = 32'(y0) + 32'(n) > 32'(h) ? 32'(h) : 32'(y0) + 32'(n);
        ya_i = 32'(lo);
        rows_i = hi > lo ? 32'(hi - lo) : 0;
        nb_i = rows_i * 32'(w) * pw_i;              // the in-range rows' beats: one run
        a0_i = base + 64'(ya_i * 32'(w) * pw_i) * BYTES;
    end

    logic running, started;
    logic [31:0] pw, cw, s, nb, ww, nn;
    logic [31:0] cc;
    logic [63:0] a0;
    logic [31:0] ar_beats;                          // beats requested
    logic [OW-1:0] ar_open;                         // bursts with beats still to come

    // ---- AR: the run as bursts within 4 KiB ----
    `include "axi_burst.svh"
    wire ar_first = start && nb_i != 0;             // the first burst, in the start cycle
    wire [63:0] ar_addr = ar_first ? a0_i : a0 + 64'(ar_beats) * BYTES;
    wire [31:0] ar_len = ar_first ? axi_burst_len(a0_i, nb_i, BYTES, BURST)
                                  : axi_burst_len(ar_addr, nb - ar_beats, BYTES, BURST);
    assign m_axi_ARID = '0;
    assign m_axi_ARADDR = ar_addr;
    assign m_axi_ARLEN = 8'(ar_len - 1);
    assign m_axi_ARSIZE = 3'($clog2(BYTES));
    assign m_axi_ARBURST = 2'b01;                   // INCR
    assign m_axi_ARVALID = ar_first || (running && ar_beats < nb && 32'(ar_open) < OUTSTANDING);
    wire ar_go = m_axi_ARVALID && m_axi_ARREADY;

    // ---- the loop: a data pointer over the in-range rows, a zero pointer over the others ----
    // Both walk kernels.h's steps (S a pixel, an fm word written every T_IN / G of them); a cycle
    // takes a data step when it can (its beat, if it needs one, is on R), else a zero step: the zero
    // rows fill the cycles the data steps wait for beats, so the call takes max(trip, arrive) after the
    // first beat, as the model's _io_read counts, whether the zero rows are above or below the map.
    logic [31:0] ra, rb;                            // band rows [ra, rb) are in the map
    logic [31:0] dr, dx, dj, dpix, dbl, dkb, dfl, dfw, dk0;  // the data pointer: row, pixel, step, ..
    logic [31:0] zr, zx, zj, zpix, zfl, zfw;        // the zero pointer
    logic [AXI_BITS-1:0] beat;                      // the beat being unpacked
    logic [T_IN*WA-1:0] v;                          // the fm word being filled
    wire d_left = dr < rb, z_left = zr < nn;
    wire need = dbl == 0 && dkb < pw;               // the data step starts a beat
    wire armed = running && (started || nb == 0 || m_axi_RVALID);
    wire d_go = armed && d_left && (!need || m_axi_RVALID);
    wire z_go = armed && !d_go && z_left;
    wire d_pix_end = dj + 1 == s, z_pix_end = zj + 1 == s;
    wire d_last = d_pix_end && dx + 1 == ww && dr + 1 == rb;
    // the zero pointer's next row: the rows above the map, then the ones below it
    wire [31:0] z_next_row = zr + 1 == ra ? rb : zr + 1;
    wire z_last = z_pix_end && zx + 1 == ww && z_next_row >= nn;
    wire last = (d_go && d_last && !z_left) || (z_go && z_last && !d_left);
    assign m_axi_RREADY = armed && d_left && need;
    wire [AXI_BITS-1:0] src = need ? m_axi_RDATA : beat;
    logic [T_IN*WA-1:0] v_n;
    always_comb begin
        v_n = v;
        for (int l = 0; l < G; l++)
            v_n[(32'(dfl) + l) * WA +: WA] = dk0 + 32'(l) < cc ? src[(32'(dbl) + l) * SB +: WA] : '0;
    end
    assign fm_wstrb = '1;

    always_ff @(posedge clk) begin
        done <= 1'b0;
        fm_we <= 1'b0;
        if (rst) begin
            running <= 1'b0;
            busy <= 1'b0;
            rd_error <= 1'b0;
        end else if (start) begin
            logic [31:0] ra_i, rb_i;
            ra_i = ya_i - 32'(y0);                  // band row of the first in-range row
            rb_i = ra_i + rows_i;
            if (nb_i == 0) ra_i = 32'(n);           // no row in the map: all zero rows
            if (nb_i == 0) rb_i = 32'(n);
            running <= 1'b1;
            busy <= 1'b1;
            started <= 1'b0;
            rd_error <= 1'b0;
            {pw, cw, s, nb, a0} <= {pw_i, cw_i, s_i, nb_i, a0_i};
            {cc, ww, nn} <= {32'(c), 32'(w), 32'(n)};
            ar_beats <= ar_go ? ar_len : 0;
            ar_open <= OW'(ar_go);
            {ra, rb, dr} <= {ra_i, rb_i, ra_i};
            dpix <= ra_i * 32'(w) * cw_i;
            zr <= ra_i == 0 ? rb_i : 0;
            zpix <= ra_i == 0 ? rb_i * 32'(w) * cw_i : 0;
            {dx, dj, dbl, dkb, dfl, dfw, dk0, zx, zj, zfl, zfw} <= '0;
            v <= '0;
            if (n == 0 || w == 0) begin             // nothing to read
                running <= 1'b0;
                busy <= 1'b0;
                done <= 1'b1;
            end
        end else if (running) begin
            if (ar_go) ar_beats <= ar_beats + ar_len;
            ar_open <= ar_open + OW'(ar_go) - OW'(m_axi_RVALID && m_axi_RREADY && m_axi_RLAST);
            if (m_axi_RVALID && m_axi_RREADY && m_axi_RRESP != 2'b00) rd_error <= 1'b1;
            if (d_go || z_go) started <= 1'b1;
            if (last) begin
                running <= 1'b0;
                busy <= 1'b0;
                done <= 1'b1;
            end
            if (d_go) begin
                if (need) beat <= m_axi_RDATA;
                v <= v_n;
                if (32'(dfl) + G == T_IN && dfw < cw) begin
                    fm_we <= 1'b1;
                    fm_waddr <= FA'(dpix + dfw);
                    fm_wdata <= v_n;
                end
                dk0 <= dk0 + G;
                if (32'(dbl) + G == IO_PER) begin
                    dbl <= 0;
                    dkb <= dkb + 1;
                end else dbl <= dbl + G;
                if (32'(dfl) + G == T_IN) begin
                    dfl <= 0;
                    dfw <= dfw + 1;
                end else dfl <= dfl + G;
                if (d_pix_end) begin                // the pixel's last step
                    {dj, dk0, dbl, dkb, dfl, dfw} <= '0;
                    dpix <= dpix + cw;
                    if (dx + 1 == ww) begin
                        dx <= 0;
                        dr <= dr + 1;
                    end else dx <= dx + 1;
                end else dj <= dj + 1;
            end
            if (z_go) begin
                if (32'(zfl) + G == T_IN && zfw < cw) begin
                    fm_we <= 1'b1;
                    fm_waddr <= FA'(zpix + zfw);
                    fm_wdata <= '0;
                end
                if (32'(zfl) + G == T_IN) begin
                    zfl <= 0;
                    zfw <= zfw + 1;
                end else zfl <= zfl + G;
                if (z_pix_end) begin
                    {zj, zfl, zfw} <= '0;
                    if (zx + 1 == ww) begin
                        zx <= 0;
                        zr <= z_next_row;
                        zpix <= z_next_row * ww * cw;
                    end else begin
                        zx <= zx + 1;
                        zpix <= zpix + cw;
                    end
                end else zj <= zj + 1;
            end
        end
    end
endmodule
