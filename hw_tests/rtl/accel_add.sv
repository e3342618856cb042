// A residual step of the layer program (kernels.h residual): x += f over the rows x words of two
// on-chip buffers of LANES act codes a word, one word a cycle from the cycle after start (golden
// `add` of two act tensors: the exact sum, range-checked as act: SAT clamps, WRAP wraps and flags
// `out_ovf`), each output word with its index; done the cycle after the last output.
// Cycles: rows x words + 2 (the performance model's step_cost "residual" counts rows x words).
module accel_add #(
    parameter int W = 32,             // act width (signed)
    parameter int SAT = 0,            // act overflow: 1 saturate, 0 wrap (and flag)
    parameter int LANES = 16
) (
    input  logic clk,
    input  logic rst,
    input  logic start,
    input  logic [31:0] n_words,
    output logic done,
    // the two operands from the caller's feature-map buffers (the residual stream x on one read port,
    // the sublayer output f on the other): the word address read this cycle, both words the next
    output logic [31:0] x_raddr,
    input  logic [LANES*W-1:0] x_rdata,
    input  logic [LANES*W-1:0] f_rdata,
    output logic out_valid,
    output logic [31:0] out_index,
    output logic [LANES*W-1:0] out_y,
    output logic [LANES-1:0] out_ovf
);
    localparam longint MAXC = (64'sd1 <<< (W - 1)) - 1, MINC = -(64'sd1 <<< (W - 1));

    logic running, feeding, v1;
    logic [31:0] feed, i1, total;
    logic [LANES*W-1:0] a1, b1;
    assign x_raddr = feed;
    assign a1 = x_rdata;
    assign b1 = f_rdata;
    always_ff @(posedge clk) begin
        done <= 1'b0;
        out_valid <= 1'b0;
        v1 <= 1'b0;
        if (rst) begin
            running <= 1'b0;
            feeding <= 1'b0;
        end else if (start) begin
            running <= n_words != 0;
            feeding <= n_words != 0;
            done <= n_words == 0;
            feed <= '0;
            total <= n_words;
        end else if (running) begin
            if (feeding) begin  // stage 1: read both words
                i1 <= feed;
                v1 <= 1'b1;
                feed <= feed + 1;
                if (feed == total - 1) feeding <= 1'b0;
            end
            if (v1) begin  // stage 2: add, range-check
                for (int l = 0; l < LANES; l++) begin
                    longint s;
                    s = longint'($signed(a1[l*W +: W])) + longint'($signed(b1[l*W +: W]));
                    out_ovf[l] <= SAT == 0 && (s > MAXC || s < MINC);
                    out_y[l*W +: W] <= W'((SAT != 0 && s > MAXC) ? MAXC : (SAT != 0 && s < MINC) ? MINC : s);
                end
                out_valid <= 1'b1;
                out_index <= i1;
                if (i1 == total - 1) begin
                    running <= 1'b0;
                    done <= 1'b1;
                end
            end
        end
    end
endmodule
