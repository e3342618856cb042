// The task heads' row writer (kernels.h head_pack_rows / head_write_rows, and head_store_grid as a
// use of the same unit): fm words (a read port) -> DDR over an AXI4 write master, in one of two
// layouts, act codes sign-extended into SB storage bits, little-endian, IO_PER = AXI_BITS / SB a word:
//   (a) pixel-major (to_pred = 0; a scratch map): output rows [y0, y0 + n) of width w, pixel p =
//       r w + x read from fm words (first + p) * sw + j (codes j T_IN ..), written as PW =
//       ceil(c / IO_PER) whole words from word (y0 w + p) * PW of the map at base; lanes k >= c are
//       0; ReLU if relu. head_write_rows to a scratch map: first = 0, sw = CW = ceil(c / T_IN);
//       head_store_grid: the features H (token rows) -> scratch 0, first = the class token's rows,
//       sw = D_WORDS, y0 = 0, n x w = the grid. G = gcd(IO_PER, T_IN) codes a step (kernels.h
//       HEAD_G), S = max(PW IO_PER, CW T_IN) / G steps a pixel, one run of n w PW words;
//   (b) channel-major (to_pred = 1; the prediction (c, h, w) at base): code (ch, y0 + r, x) at code
//       index (ch h + y0 + r) w + x, read from fm word (r w + x) * CW + ch / T_IN, lane ch % T_IN;
//       one code a step (ch outer, then r, x), a run of n w codes a channel. A run that starts or
//       ends inside an AXI word writes only its own codes' bytes (WSTRB): kernels.h head_put reads
//       the word and writes it back whole instead (a read-modify-write), so the DDR bytes are the same
//       and this unit makes no read (the model's _io_write charges that read's latency per unaligned
//       run end: on a word-aligned run, e.g. the demo's 32-wide rows, there is none).
// The loop's step is also offered on st_x (pixel: p in (a), x in (b)), st_q (fm word: j in (a),
// ch / T_IN in (b)) and st_lane (the step's first fm lane) with fm_re, so that a unit computing the
// codes (accel_hup: the bilinear sum) can answer fm_rdata from its own buffers instead of a bank.
//
// Schedule (what mtl_moe/perf.py _io_write counts: max(trip, the W stream) + the last response):
//   - the loop: one step a cycle from the start cycle on (trip = n w S in (a), c n w in (b): the
//     first step, with its fm read, in the start cycle itself); a step reads an fm word (a: the
//     step that starts one, b: every step), data the next cycle (the bank's read latency 1), where
//     the codes go into the beat being filled; a full beat (or a run's last) is pushed into an
//     FD-entry W FIFO with its strobes; the loop stalls only while the FIFO could overflow;
//   - AW: each run's words as INCR bursts of up to BURST beats, split where one would cross 4 KiB,
//     issued as soon as their run is known (all of (a)'s at once, (b)'s channel after channel), while
//     fewer than OUTSTANDING bursts await their B; their lengths queue for the W side's WLAST;
//   - W: the FIFO's beats once their burst's AW is out; B: counted; done (one pulse) in the cycle
//     the last burst's response comes.
module accel_hwr #(
    parameter int AXI_BITS = 256,
    parameter int SB = 32,            // storage bits of one act code in DDR (8 * OUT_BYTES)
    parameter int WA = 32,            // act width: a lane of an fm word, WA <= SB
    parameter int T_IN = 16,
    parameter int G = 8,              // codes a step of layout (a): gcd(IO_PER, T_IN)
    parameter int BURST = 128,        // beats of one burst: min(256, 4096 / (AXI_BITS / 8))
    parameter int OUTSTANDING = 2,    // write bursts awaiting their response at most
    parameter int FA = 10,            // fm address bits
    parameter int FD = 4,             // W FIFO entries
    parameter int LQ = 16             // burst lengths queued for W at most
) (
    input  logic clk,
    input  logic rst,
    input  logic start,
    input  logic to_pred,             // layout (b), else (a)
    input  logic relu,
    input  logic fresh,               // (a): the source answers every step (accel_hup), not only a word's first
    input  logic [15:0] c,            // channels
    input  logic [15:0] h,            // rows of the output map (b: the prediction's height)
    input  logic [15:0] w,            // pixels a row
    input  logic [15:0] y0,           // first output row written
    input  logic [15:0] n,            // rows written
    input  logic [15:0] first,        // (a): fm pixel of output pixel 0
    input  logic [15:0] sw,           // (a): fm words a pixel
    input  logic [63:0] base,         // byte address of the map (a) / the prediction (b), AXI_BITS/8-aligned
    output logic busy,
    output logic done,
    output logic wr_error,            // a write response was not OKAY (sticky until start)
    // fm read port (data the cycle after fm_re) and the step it serves
    output logic fm_re,
    output logic [FA-1:0] fm_raddr,
    input  logic [T_IN*WA-1:0] fm_rdata,
    output logic [15:0] st_x,
    output logic [15:0] st_q,
    output logic [15:0] st_lane,
    // AXI4 write master (the io port)
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
    /* verilator lint_off UNUSEDSIGNAL */  // one ID
    input  logic [0:0] m_axi_BID,
    /* verilator lint_on UNUSEDSIGNAL */
    input  logic [1:0] m_axi_BRESP,
    input  logic m_axi_BVALID,
    output logic m_axi_BREADY
);
    localparam int IO_PER = AXI_BITS / SB;          // codes in one beat
    localparam int BYTES = AXI_BITS / 8;
    localparam int LB = SB / 8;                     // bytes of one code
    localparam int PL = $clog2(IO_PER);
    localparam int FW = $clog2(FD + 1);
    localparam int OW = $clog2(OUTSTANDING + 1);
    localparam int QW = $clog2(LQ);
    initial begin
        if (AXI_BITS % SB != 0 || SB % 8 != 0 || IO_PER < 2 || (IO_PER & (IO_PER - 1)) != 0)
            $error("accel_hwr: a beat must hold a power of two (>= 2) of whole-byte codes");
        if (WA > SB) $error("accel_hwr: act width %0d exceeds its storage %0d", WA, SB);
        if (IO_PER % G != 0 || T_IN % G != 0) $error("accel_hwr: G = %0d must divide IO_PER and T_IN", G);
        if (FD < 2 || (LQ & (LQ - 1)) != 0 || (FD & (FD - 1)) != 0)
            $error("accel_hwr: FD >= 2 and LQ, FD powers of two");
    end

    // The loop's state and the call's sizes are registers (*_r); the names without _r are what a
    // step sees: the registers, or in the start cycle the call's initial values from the ports, so
    // that the first step (and its fm read) happens in the start cycle itself.
    logic running, rl;
    logic pred_r, fresh_r;
    logic [31:0] cc_r, hh_r, ww_r, nn_r, pw_r, cw_r, s_r, trip_r, issued_r, swd_r;
    logic [31:0] pw_i, cw_i, s_i, np_i;
    always_comb begin
        pw_i = (32'(c) + IO_PER - 1) / IO_PER;
        cw_i = (32'(c) + T_IN - 1) / T_IN;
        s_i = (pw_i * IO_PER > cw_i * T_IN ? pw_i * IO_PER : cw_i * T_IN) / G;
        np_i = 32'(n) * 32'(w);
    end
    wire pred = start ? to_pred : pred_r;
    wire fresh_c = start ? fresh : fresh_r;
    wire [31:0] cc = start ? 32'(c) : cc_r, hh = start ? 32'(h) : hh_r, ww = start ? 32'(w) : ww_r;
    wire [31:0] nn = start ? 32'(n) : nn_r, pw = start ? pw_i : pw_r, cw = start ? cw_i : cw_r;
    wire [31:0] s = start ? s_i : s_r, swd = start ? (to_pred ? cw_i : 32'(sw)) : swd_r;
    wire [31:0] trip = start ? (to_pred ? 32'(c) * np_i : np_i * s_i) : trip_r;
    wire [31:0] issued = start ? 0 : issued_r;
    logic [31:0] n_beats;                           // beats of the whole call (every run)
    logic [63:0] mbase;

    // ---- the runs: (a) one of n w PW words; (b) one a channel, n w codes from (ch h + y0) w ----
    logic [31:0] g_run, aw_run;                     // the run AW is on: its first code (b), its index
    logic [63:0] aw_word;                           // the next word AW requests
    logic [31:0] aw_left;                           // its run's beats not yet requested
    logic [31:0] nruns;
    wire [31:0] run_words = pred ? ((g_run + nn * ww - 1) >> PL) - (g_run >> PL) + 1 : n_beats;
    // AW bursts within 4 KiB
    `include "axi_burst.svh"
    logic aw_on;                                    // aw_word / aw_left hold a run's remaining words
    logic [OW-1:0] aw_open;
    logic [QW:0] lq_cnt;
    logic [7:0] lq [LQ];
    logic [QW-1:0] lq_wp, lq_rp;
    wire [63:0] aw_addr = mbase + aw_word * BYTES;
    wire [31:0] aw_len = axi_burst_len(aw_addr, aw_left, BYTES, BURST);
    assign m_axi_AWID = '0;
    assign m_axi_AWADDR = aw_addr;
    assign m_axi_AWLEN = 8'(aw_len - 1);
    assign m_axi_AWSIZE = 3'($clog2(BYTES));
    assign m_axi_AWBURST = 2'b01;                   // INCR
    assign m_axi_AWVALID = running && aw_on && 32'(aw_open) < OUTSTANDING && 32'(lq_cnt) < LQ;
    wire aw_go = m_axi_AWVALID && m_axi_AWREADY;

    // ---- the W FIFO ----
    logic [AXI_BITS-1:0] q_data [FD];
    logic [BYTES-1:0] q_strb [FD];
    logic [$clog2(FD)-1:0] q_wp, q_rp;
    logic [FW-1:0] q_cnt_r;
    wire [FW-1:0] q_cnt = start ? '0 : q_cnt_r;
    logic [31:0] aw_beats, w_beats, w_in;           // beats requested, written, of this W burst
    assign m_axi_WDATA = q_data[q_rp];
    assign m_axi_WSTRB = q_strb[q_rp];
    assign m_axi_WVALID = running && q_cnt != 0 && w_beats < aw_beats;
    assign m_axi_WLAST = w_in == 32'(lq[lq_rp]);
    wire w_go = m_axi_WVALID && m_axi_WREADY;
    assign m_axi_BREADY = 1'b1;
    wire b_go = m_axi_BVALID;

    // ---- the loop (stage 1: the step, its fm read) ----
    logic [31:0] p_r, x_r, r_r, j_r, ch_r, q_r, fl_r, bl_r, kb_r, k0_r, pix_r;  // pix: fm word of the pixel
    logic [31:0] gl_r, gr_r;                        // (b): the step's code index, its run's first
    logic st_v_r, st_push, st_rd;                   // stage 2: a step, it ends a beat, it read a word
    wire [31:0] p = start ? 0 : p_r, x = start ? 0 : x_r, r = start ? 0 : r_r, j = start ? 0 : j_r;
    wire [31:0] ch = start ? 0 : ch_r, q = start ? 0 : q_r, fl = start ? 0 : fl_r, bl = start ? 0 : bl_r;
    wire [31:0] kb = start ? 0 : kb_r, k0 = start ? 0 : k0_r;
    wire [31:0] pix = start ? (to_pred ? 0 : 32'(first) * 32'(sw)) : pix_r;
    wire [31:0] gl = start ? 32'(y0) * 32'(w) : gl_r, gr = start ? 32'(y0) * 32'(w) : gr_r;
    wire st_v = !start && st_v_r;
    logic [31:0] st_fl, st_bl, st_k0;
    logic [T_IN*WA-1:0] held;
    wire push = st_v && st_push;
    wire go = (start || running) && issued < trip && 32'(q_cnt) + 32'(push) < FD;
    wire rd = pred || fresh_c || (fl == 0 && q < cw);  // (a): the step starts an fm word
    assign fm_re = go && rd;
    assign fm_raddr = FA'(pix + q);
    assign st_x = 16'(pred ? x : p);
    assign st_q = 16'(q);
    assign st_lane = 16'(pred ? ch % T_IN : fl);
    wire run_end = pred && r + 1 == nn && x + 1 == ww;  // (b): the channel's last code

    // ---- stage 2: the codes into the beat ----
    wire [T_IN*WA-1:0] word = st_rd ? fm_rdata : held;
    logic [AXI_BITS-1:0] beat, beat_n;
    logic [BYTES-1:0] strb, strb_n;
    always_comb begin
        logic signed [WA-1:0] a;
        beat_n = beat;
        strb_n = strb;
        if (pred) begin
            a = word[st_fl * WA +: WA];
            if (rl && a < 0) a = '0;
            beat_n[st_bl * SB +: SB] = SB'(a);
            strb_n[st_bl * LB +: LB] = '1;
        end else
            for (int l = 0; l < G; l++) begin
                a = st_k0 + 32'(l) < cc ? word[(st_fl + 32'(l)) * WA +: WA] : '0;
                if (rl && a < 0) a = '0;
                beat_n[(st_bl + 32'(l)) * SB +: SB] = SB'(a);
                strb_n[(st_bl + 32'(l)) * LB +: LB] = '1;
            end
    end

    // done: the last response (every beat written, every burst answered) in the cycle it comes, or
    // the cycle after a start with nothing to write
    wire fin = running && issued == trip && !st_v && q_cnt == 0 && aw_run == nruns && w_beats == aw_beats
               && aw_open == OW'(b_go) && (b_go || aw_open == 0);
    logic empty;
    assign done = fin || empty;

    always_ff @(posedge clk) begin
        empty <= 1'b0;
        if (rst) begin
            running <= 1'b0;
            busy <= 1'b0;
            wr_error <= 1'b0;
            st_v_r <= 1'b0;
            q_cnt_r <= '0;
        end else if (start) begin
            running <= 1'b1;
            busy <= 1'b1;
            wr_error <= 1'b0;
            {pred_r, rl, fresh_r} <= {to_pred, relu, fresh};
            {cc_r, hh_r, ww_r, nn_r, pw_r, cw_r, s_r} <= {cc, hh, ww, nn, pw, cw, s};
            {trip_r, swd_r} <= {trip, swd};
            n_beats <= np_i * pw_i;
            mbase <= base;
            g_run <= 32'(y0) * 32'(w);              // (b): channel 0's first code
            aw_word <= 64'(32'(y0) * 32'(w) * pw_i);  // (a); (b) sets it per run
            // the first run's words, requested from the next cycle on
            aw_on <= 1'b1;
            aw_left <= to_pred ? ((32'(y0) * 32'(w) + np_i - 1) >> PL) - ((32'(y0) * 32'(w)) >> PL) + 1
                               : np_i * pw_i;
            if (to_pred) aw_word <= 64'((32'(y0) * 32'(w)) >> PL);
            aw_run <= 0;
            {issued_r, p_r, x_r, r_r, j_r, ch_r, q_r, fl_r, bl_r, kb_r, k0_r} <= '0;
            {pix_r, gl_r, gr_r} <= {pix, gl, gr};
            nruns <= to_pred ? 32'(c) : 1;
            {aw_beats, w_beats, w_in} <= '0;
            aw_open <= '0;
            {lq_cnt, lq_wp, lq_rp} <= '0;
            beat <= '0;
            strb <= '0;
            q_cnt_r <= '0;
            {q_wp, q_rp} <= '0;
            if (n == 0 || w == 0 || c == 0) begin
                running <= 1'b0;
                busy <= 1'b0;
                empty <= 1'b1;
            end
        end else if (running) begin
            // ---- AW: the next run's words, then its bursts ----
            if (!aw_on && aw_run < nruns) begin
                aw_on <= 1'b1;
                aw_left <= run_words;
                if (pred) aw_word <= 64'(g_run >> PL);
            end else if (aw_go) begin
                lq[lq_wp] <= 8'(aw_len - 1);
                lq_wp <= lq_wp + 1'b1;
                aw_beats <= aw_beats + aw_len;
                aw_word <= aw_word + 64'(aw_len);
                aw_left <= aw_left - aw_len;
                if (aw_left == aw_len) begin        // the run's last burst
                    aw_on <= 1'b0;
                    aw_run <= aw_run + 1;
                    g_run <= g_run + hh * ww;
                end
            end
            lq_cnt <= lq_cnt + (QW + 1)'(aw_go) - (QW + 1)'(w_go && m_axi_WLAST);
            aw_open <= aw_open + OW'(aw_go) - OW'(b_go);
            if (b_go && m_axi_BRESP != 2'b00) wr_error <= 1'b1;
            // ---- W ----
            q_cnt_r <= q_cnt + FW'(push) - FW'(w_go);
            if (w_go) begin
                q_rp <= q_rp + 1'b1;
                w_beats <= w_beats + 1;
                if (m_axi_WLAST) begin
                    w_in <= 0;
                    lq_rp <= lq_rp + 1'b1;
                end else w_in <= w_in + 1;
            end
            // ---- stage 2: pack the step read last cycle; a full beat (or a run's last) into the FIFO ----
            if (st_v) begin
                if (st_rd) held <= fm_rdata;
                if (push) begin
                    q_data[q_wp] <= beat_n;
                    q_strb[q_wp] <= strb_n;
                    q_wp <= q_wp + 1'b1;
                    beat <= '0;
                    strb <= '0;
                end else begin
                    beat <= beat_n;
                    strb <= strb_n;
                end
            end
            if (fin) begin
                running <= 1'b0;
                busy <= 1'b0;
            end
        end
        // ---- stage 1: the step (in the start cycle too: its values win over the start's) ----
        if (!rst) begin
            st_v_r <= go;
        if (go) begin
            issued_r <= issued + 1;
            st_rd <= rd;
            if (pred) begin
                st_fl <= ch % T_IN;
                st_bl <= gl % IO_PER;
                st_k0 <= ch;
                st_push <= gl % IO_PER == IO_PER - 1 || run_end;
                gl_r <= run_end ? gr + hh * ww : gl + 1;
                if (run_end) gr_r <= gr + hh * ww;
                if (x + 1 == ww) begin
                    x_r <= 0;
                    pix_r <= r + 1 == nn ? 0 : pix + cw;
                    if (r + 1 == nn) begin
                        r_r <= 0;
                        ch_r <= ch + 1;
                        q_r <= (ch + 1) / T_IN;
                    end else r_r <= r + 1;
                end else begin
                    x_r <= x + 1;
                    pix_r <= pix + cw;
                end
            end else begin
                st_fl <= fl;
                st_bl <= bl;
                st_k0 <= k0;
                st_push <= bl + G == IO_PER && kb < pw;
                k0_r <= k0 + G;
                if (bl + G == IO_PER) begin
                    bl_r <= 0;
                    kb_r <= kb + 1;
                end else bl_r <= bl + G;
                if (fl + G == T_IN) begin
                    fl_r <= 0;
                    q_r <= q + 1;
                end else fl_r <= fl + G;
                if (j + 1 == s) begin
                    {j_r, k0_r, bl_r, kb_r, fl_r, q_r} <= '0;
                    p_r <= p + 1;
                    pix_r <= pix + swd;
                end else j_r <= j + 1;
            end
        end
        end
    end
endmodule
