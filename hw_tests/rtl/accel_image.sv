// The read_image step of the layer program with im2col done by the write addressing: the image of
// one batch entry (C x IMG_H x IMG_W input codes, SB storage bits each, little-endian, (c, y, x)
// order as mtl_moe/deploy/regmap.py stores it) read from DDR over an AXI4 read master into the
// on-chip `img` buffer through the feature-map write port (docs: /work/notes/fm.md), laid out as
// the patch-embedding linear reads it: row r = patch (gy, gx) = r / GW, r % GW; word kb of the row
// at address r * KPW + kb holds codes k = kb*T_IN .. kb*T_IN + T_IN-1 of the patch in (channel, ky,
// kx) order (golden conv2d's im2col), lane l at bits [l*WA +: WA], each input code sign-extended
// from WI to the WA-bit lane; lanes k >= KP of the last word are written 0.
//
// Why write-side: a patch word gathers codes from several pixel rows (the demo: 4 rows of 4
// pixels), so a read-side gather would need several RAM words per linear-unit word; writing each
// code straight to its im2col place lets the linear read patch r's word kb as ONE word.
//
// Schedule (what mtl_moe/perf.py's step_cost "read_image" counts):
//   - AR: the image's BEATS beats as INCR bursts of up to BURST beats (256 and 4 KiB per burst),
//     split where one would cross 4 KiB (none from a 4 KiB-aligned image, as the host's buffers
//     are: the model's count), issued back to back (the port takes several requests; its
//     first-beat latency is paid once);
//   - R: beats into a 2-entry FIFO (RREADY while it has room);
//   - write loop: one PIECE a cycle, a piece being the longest run of consecutive image codes that
//     lies in one AXI beat, one patch row segment (PATCH pixels of one row of one patch) and one
//     img word: n = min(PER - lane, PATCH - kx, T_IN - k % T_IN) codes written with n strobes. A beat
//     leaves the FIFO with its last piece. Pieces = the image codes at which a beat, a segment or
//     an img word starts (mtl_moe.perf.image_pieces counts them the same way).
// So start -> done = first-beat latency + max(pieces, the beats' arrival) + the AR cycle, the FIFO
// cycle and done's register.
module accel_image #(
    parameter int AXI_BITS = 256,
    parameter int SB = 32,            // storage bits of one input code in DDR (8 * IN_BYTES)
    parameter int WI = 32,            // input code width (signed, the low WI bits of its storage)
    parameter int WA = 32,            // act width: a lane of a feature-map word, WI <= WA
    parameter int T_IN = 16,
    parameter int C = 3,
    parameter int IMG_H = 32,
    parameter int IMG_W = 32,
    parameter int PATCH = 4,
    parameter int FA = 10,            // feature-map address bits
    parameter int BURST = 128         // beats of one burst: min(256, 4096 / (AXI_BITS / 8))
) (
    input  logic clk,
    input  logic rst,
    input  logic start,
    input  logic [63:0] img_addr,     // byte address of the image, AXI_BITS/8-aligned
    output logic busy,
    output logic done,
    output logic rd_error,            // a read came back with an error response (sticky until start)
    // AXI4 read master (the io port)
    output logic [0:0] m_axi_i_ARID,
    output logic [63:0] m_axi_i_ARADDR,
    output logic [7:0] m_axi_i_ARLEN,
    output logic [2:0] m_axi_i_ARSIZE,
    output logic [1:0] m_axi_i_ARBURST,
    output logic m_axi_i_ARVALID,
    input  logic m_axi_i_ARREADY,
    /* verilator lint_off UNUSEDSIGNAL */  // one ID; the burst lengths are the unit's own counts
    input  logic [0:0] m_axi_i_RID,
    input  logic m_axi_i_RLAST,
    /* verilator lint_on UNUSEDSIGNAL */
    input  logic [AXI_BITS-1:0] m_axi_i_RDATA,
    input  logic [1:0] m_axi_i_RRESP,
    input  logic m_axi_i_RVALID,
    output logic m_axi_i_RREADY,
    // feature-map write port (the img buffer)
    output logic fm_we,
    output logic [FA-1:0] fm_waddr,
    output logic [T_IN-1:0] fm_wstrb,
    output logic [T_IN*WA-1:0] fm_wdata
);
    localparam int GW = IMG_W / PATCH, GH = IMG_H / PATCH;
    localparam int KP = C * PATCH * PATCH, KPW = (KP + T_IN - 1) / T_IN;
    localparam int PER = AXI_BITS / SB;             // codes in one beat
    localparam int ELEMS = C * IMG_H * IMG_W;
    localparam int BEATS = (ELEMS + PER - 1) / PER;
    localparam int BYTES = AXI_BITS / 8;
    initial begin
        if (IMG_W % PATCH != 0 || IMG_H % PATCH != 0) $error("accel_image: the image must tile into patches");
        if (WI > WA || WI > SB) $error("accel_image: input width %0d exceeds the lane %0d or its storage %0d",
                                       WI, WA, SB);
        if (AXI_BITS % SB != 0) $error("accel_image: a beat must hold whole codes");
        if (GH * GW * KPW > (1 << FA)) $error("accel_image: FA = %0d address bits cannot hold %0d words", FA,
                                              GH * GW * KPW);
    end

    // ---- AR: the bursts of the image ----
    logic running;
    logic [31:0] rq_beats;                          // beats requested so far
    logic [31:0] ar_len, to_4k;
    logic [63:0] ar_addr;
    always_comb begin
        ar_addr = img_addr + 64'(rq_beats) * BYTES;
        to_4k = 32'((64'd4096 - (ar_addr & 64'hfff)) / BYTES);  // a burst never crosses 4 KiB
        ar_len = BEATS - rq_beats;
        if (ar_len > BURST) ar_len = BURST;
        if (ar_len > to_4k) ar_len = to_4k;
    end
    assign m_axi_i_ARID = '0;
    assign m_axi_i_ARADDR = ar_addr;
    assign m_axi_i_ARLEN = 8'(ar_len - 1);
    assign m_axi_i_ARSIZE = 3'($clog2(BYTES));
    assign m_axi_i_ARBURST = 2'b01;                 // INCR
    assign m_axi_i_ARVALID = running && rq_beats < BEATS;

    // ---- R: a 2-entry beat FIFO ----
    logic [AXI_BITS-1:0] q [2];
    logic wp, rp;
    logic [1:0] cnt;
    logic pop;
    assign m_axi_i_RREADY = running && cnt < 2;
    wire push = m_axi_i_RVALID && m_axi_i_RREADY;
    wire [AXI_BITS-1:0] head = q[rp];

    // ---- the write loop: counters of the current code (c, gy, ky, gx, kx) and its lane in the beat ----
    logic [$clog2(C + 1)-1:0] c;
    logic [$clog2(GH + 1)-1:0] gy;
    logic [$clog2(GW + 1)-1:0] gx;
    logic [$clog2(PATCH + 1)-1:0] ky, kx;
    logic [$clog2(PER + 1)-1:0] ln;
    int k, kl, n;
    always_comb begin
        k = (int'(c) * PATCH + int'(ky)) * PATCH + int'(kx);  // the code's place in the patch row
        kl = k % T_IN;
        n = PER - int'(ln);
        if (PATCH - int'(kx) < n) n = PATCH - int'(kx);
        if (T_IN - kl < n) n = T_IN - kl;
    end
    wire piece = running && cnt != 0 && int'(c) < C;
    wire seg_end = int'(kx) + n == PATCH;
    wire last = seg_end && int'(gx) == GW - 1 && int'(ky) == PATCH - 1 && int'(gy) == GH - 1 && int'(c) == C - 1;
    assign pop = piece && (int'(ln) + n == PER || last);

    always_ff @(posedge clk) begin
        done <= 1'b0;
        fm_we <= 1'b0;
        if (rst) begin
            running <= 1'b0;
            busy <= 1'b0;
            rd_error <= 1'b0;
            cnt <= '0;
        end else if (start) begin
            running <= 1'b1;
            busy <= 1'b1;
            rd_error <= 1'b0;
            rq_beats <= '0;
            cnt <= '0;
            wp <= 1'b0;
            rp <= 1'b0;
            {c, gy, gx, ky, kx, ln} <= '0;
        end else if (running) begin
            if (m_axi_i_ARVALID && m_axi_i_ARREADY) rq_beats <= rq_beats + ar_len;
            if (push) begin
                q[wp] <= m_axi_i_RDATA;
                wp <= ~wp;
                if (m_axi_i_RRESP != 2'b00) rd_error <= 1'b1;
            end
            cnt <= cnt + 2'(push) - 2'(pop);
            if (pop) rp <= ~rp;
            if (piece) begin
                fm_we <= 1'b1;
                fm_waddr <= FA'((int'(gy) * GW + int'(gx)) * KPW + k / T_IN);
                for (int j = 0; j < T_IN; j++) begin
                    int src;
                    logic [WI-1:0] v;
                    src = int'(ln) + j - kl;  // the beat lane that lands in word lane j
                    if (src < 0 || src >= PER) src = 0;
                    v = head[src * SB +: WI];
                    fm_wstrb[j] <= (j >= kl && j < kl + n) || (last && j >= kl + n);  // last: pad lanes 0
                    fm_wdata[j*WA +: WA] <= (j >= kl && j < kl + n) ? WA'($signed(v)) : '0;
                end
                ln <= pop ? '0 : ln + ($clog2(PER + 1))'(n);
                if (!seg_end) kx <= kx + ($clog2(PATCH + 1))'(n);
                else begin
                    kx <= '0;
                    if (int'(gx) != GW - 1) gx <= gx + 1'b1;
                    else begin
                        gx <= '0;
                        if (int'(ky) != PATCH - 1) ky <= ky + 1'b1;
                        else begin
                            ky <= '0;
                            if (int'(gy) != GH - 1) gy <= gy + 1'b1;
                            else begin
                                gy <= '0;
                                c <= c + 1'b1;
                            end
                        end
                    end
                end
                if (last) begin
                    running <= 1'b0;
                    busy <= 1'b0;
                    done <= 1'b1;
                end
            end
        end
    end
endmodule
