// A gelu step of the layer program (kernels.h gelu_rows): the rows x words of an on-chip buffer of
// LANES-value words (the hidden rows after fc1 / an expert's W1) through LANES gelu_units, one word a
// cycle from the cycle after start, each output word with its index; done the cycle after the last
// output. Cycles: rows x words + the units' 2 register stages + 1 (mtl_moe/perf.py step_cost "gelu").
module accel_gelu #(
    parameter int W = 32,
    parameter int F = 22,
    parameter int OUT_ROUND = 0,
    parameter int OUT_SAT = 0,
    parameter int N = 177,
    parameter int STEP = 5,
    parameter int EW = 18,
    parameter int EF = 18,
    parameter TABLE = "gelu_table.mem",
    parameter int LANES = 16
) (
    input  logic clk,
    input  logic rst,
    input  logic start,
    input  logic [31:0] n_words,      // rows x ceil(cols / LANES)
    output logic done,
    // the input words, from the caller's feature-map buffer: the address of the word taken next
    // cycle, and the word read at the address of the cycle before (a registered read)
    output logic [31:0] x_raddr,
    input  logic [LANES*W-1:0] x_rdata,
    output logic out_valid,
    output logic [31:0] out_index,
    output logic [LANES*W-1:0] out_y,
    output logic [LANES-1:0] out_ovf
);

    logic running, feeding, in_valid;
    logic [31:0] feed, outs, total;
    /* verilator lint_off UNUSEDSIGNAL */  // the lanes run in lockstep: lane 0's valid stands for all
    logic [LANES-1:0] u_valid;
    /* verilator lint_on UNUSEDSIGNAL */
    logic [LANES-1:0] u_ovf;
    logic [LANES*W-1:0] u_y, ux;
    assign in_valid = feeding;
    assign x_raddr = start ? 32'd0 : feeding ? feed + 1 : feed;
    assign ux = x_rdata;

    always_ff @(posedge clk) begin
        done <= 1'b0;
        out_valid <= 1'b0;
        if (rst) begin
            running <= 1'b0;
            feeding <= 1'b0;
        end else if (start) begin
            running <= n_words != 0;
            feeding <= n_words != 0;
            done <= n_words == 0;
            feed <= '0;
            outs <= '0;
            total <= n_words;
        end else if (running) begin
            if (feeding) begin
                feed <= feed + 1;
                if (feed == total - 1) feeding <= 1'b0;
            end
            if (u_valid[0]) begin
                out_valid <= 1'b1;
                out_index <= outs;
                out_y <= u_y;
                out_ovf <= u_ovf;
                outs <= outs + 1;
                if (outs == total - 1) begin
                    running <= 1'b0;
                    done <= 1'b1;
                end
            end
        end
    end

    for (genvar l = 0; l < LANES; l++) begin : lane
        gelu_unit #(.W(W), .F(F), .OUT_ROUND(OUT_ROUND), .OUT_SAT(OUT_SAT), .N(N), .STEP(STEP), .EW(EW),
                    .EF(EF), .TABLE(TABLE)) unit (
            .clk, .rst, .in_valid, .x(ux[l*W +: W]), .out_valid(u_valid[l]), .y(u_y[l*W +: W]),
            .overflow(u_ovf[l]));
    end
endmodule
