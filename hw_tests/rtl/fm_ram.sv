// One bank of one feature map (accel_fm.sv): a true dual-port RAM in the shape block-RAM inference
// expects (UG901 "RAM HDL coding guidelines"; Yosys memory_libmap maps it to RAMB36E2 / RAMB18E2):
// port 1 reads, port 2 reads or writes, both registered (data the cycle after the address), and
// port 2's write has a strobe per code (lane l: bits [l*WA +: WA], the byte-write enables of a
// block RAM when WA is a multiple of 8). A port-1 read of the word port 2 writes in the same cycle
// returns the old word (read-first), as the sequencer's read-then-write steps (residual, GELU in
// place) expect; port 2 returns the old word while it writes, which no caller reads.
module fm_ram #(
    parameter int WA = 32,              // bits of one code
    parameter int LANES = 16,           // codes a word (T_IN)
    parameter int DEPTH = 256,          // words
    localparam int WB = WA * LANES,
    localparam int AW = DEPTH > 1 ? $clog2(DEPTH) : 1
) (
    input  logic clk,
    input  logic [AW-1:0] p1_addr,
    output logic [WB-1:0] p1_q,
    input  logic [AW-1:0] p2_addr,
    input  logic p2_we,
    input  logic [LANES-1:0] p2_strb,
    input  logic [WB-1:0] p2_d,
    output logic [WB-1:0] p2_q
);
    logic [WB-1:0] mem [DEPTH];

    always_ff @(posedge clk) p1_q <= mem[p1_addr];

    always_ff @(posedge clk) begin
        if (p2_we)
            for (int l = 0; l < LANES; l++)
                if (p2_strb[l]) mem[p2_addr][l*WA +: WA] <= p2_d[l*WA +: WA];
        p2_q <= mem[p2_addr];
    end
endmodule
