// Attention address generator: the K/V reads of the HLS attention kernel, in its order
// (hls/include/mtl_moe/kernels.h, attention_core), one AXI beat of LANES act values per read.
// A head's row of HEAD_DIM columns is NB = ceil(HEAD_DIM / LANES) beats: beat b holds columns
// b*LANES .. min(HEAD_DIM, (b+1)*LANES) - 1 (the last beat is partial when LANES does not divide
// HEAD_DIM). Per head h, the query rows go in groups of ATTN_P (the last group holds what remains of
// N_TOKENS); per group:
//   phase 0 (Q.K^T and the single-pass softmax): K beat (j, b) for j = 0 .. N_TOKENS-1 (outer, keys
//            in order), b = 0 .. NB-1 (inner), used by the group's q_count query rows
//            (q_row .. q_row + q_count - 1);
//   phase 1 (A.V): V beat (j, b), the same order.
// So each K beat and each V beat is read once per group and shared by its P rows: 2*N_TOKENS*NB
// reads per (head, group), all K beats before the V beats.
// One read per cycle (II = 1) from a start pulse (in_valid, ignored while busy) until `last`.
// Addresses index the kernel's qkv buffer (N_TOKENS x 3*D, row-major; Q, K, V are column blocks of D,
// head h at columns h*HEAD_DIM): d is the beat's first column b*LANES and kv_addr its element
// (j*3*D + (1 + phase)*D + h*HEAD_DIM + d); q_addr is the first element of query row q_row (row
// q_row + p is q_addr + p*3*D).
// Parameters come from the model config, KernelParams and the hardware spec
// (mtl_moe.rtl.attn_addr_parameters).
module attn_addr_gen #(
    parameter int N_TOKENS = 129,
    parameter int HEAD_DIM = 64,
    parameter int N_HEAD = 3,
    parameter int ATTN_P = 4,
    parameter int LANES = 1,                                   // act values in one AXI beat
    localparam int D = N_HEAD * HEAD_DIM,                      // n_embd
    localparam int NB = (HEAD_DIM + LANES - 1) / LANES,        // beats per head row
    localparam int HW = (N_HEAD > 1) ? $clog2(N_HEAD) : 1,
    localparam int TW = (N_TOKENS > 1) ? $clog2(N_TOKENS) : 1,
    localparam int PW = $clog2(ATTN_P + 1),
    localparam int DW = (HEAD_DIM > 1) ? $clog2(HEAD_DIM) : 1,
    localparam int AW = $clog2(N_TOKENS * 3 * D)
) (
    input  logic          clk,
    input  logic          rst,
    input  logic          in_valid,   // start
    output logic          busy,
    output logic          out_valid,
    output logic          last,       // the final read of the whole pass
    output logic          phase,      // 0: K beat for the scores, 1: V beat for A.V
    output logic [HW-1:0] head,
    output logic [TW-1:0] q_row,      // the group's first query row
    output logic [PW-1:0] q_count,    // query rows in the group (ATTN_P, fewer in the last group)
    output logic [TW-1:0] k_row,      // key / value row j
    output logic [DW-1:0] d,          // the beat's first column b*LANES
    output logic [AW-1:0] kv_addr,
    output logic [AW-1:0] q_addr
);
    logic [HW-1:0] h_c;
    logic [TW-1:0] i0_c, j_c;
    logic [DW-1:0] d_c;                // b*LANES: steps by LANES, no multiplier
    logic ph_c;

    int i0, rest;
    logic [PW-1:0] np;
    logic j_end, b_end, row_end, group_end, head_end;
    always_comb begin
        i0 = int'(i0_c);
        rest = N_TOKENS - i0;
        np = (rest < ATTN_P) ? PW'(rest) : PW'(ATTN_P);
        j_end = (j_c == TW'(N_TOKENS - 1));
        b_end = (d_c == DW'((NB - 1) * LANES));   // the row's last (possibly partial) beat
        row_end = j_end && b_end;                // the phase's last read
        group_end = ph_c && row_end;
        head_end = (rest <= ATTN_P);          // this is the head's last group
    end

    always_ff @(posedge clk) begin
        if (rst) begin
            busy <= 1'b0;
            out_valid <= 1'b0;
            last <= 1'b0;
        end else begin
            out_valid <= busy;
            last <= busy && group_end && head_end && (h_c == HW'(N_HEAD - 1));
            if (busy) begin
                phase <= ph_c;
                head <= h_c;
                q_row <= i0_c;
                q_count <= np;
                k_row <= j_c;
                d <= d_c;
                kv_addr <= AW'(int'(j_c) * 3 * D + (ph_c ? 2 * D : D) + int'(h_c) * HEAD_DIM + int'(d_c));
                q_addr <= AW'(i0 * 3 * D + int'(h_c) * HEAD_DIM);
                // advance: beat innermost, then j; phase 0 -> 1 after the K pass; then the next group
                d_c <= b_end ? '0 : d_c + DW'(LANES);
                if (b_end) j_c <= j_end ? '0 : j_c + 1'b1;
                if (row_end) begin
                    ph_c <= ~ph_c;
                    if (ph_c) begin
                        i0_c <= head_end ? '0 : TW'(i0 + ATTN_P);
                        if (head_end) begin
                            h_c <= (h_c == HW'(N_HEAD - 1)) ? '0 : h_c + 1'b1;
                            if (h_c == HW'(N_HEAD - 1)) busy <= 1'b0;
                        end
                    end
                end
            end else if (in_valid) begin
                busy <= 1'b1;
                {h_c, i0_c, j_c, d_c, ph_c} <= '0;
            end
        end
    end
endmodule
