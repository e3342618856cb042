// Top-k of E gate values (the router's quantized softmax outputs): the k largest, in descending
// order; equal values go to the lower expert index (mtl_moe/ARITHMETIC.md, Router step 4).
// One set of E gates per cycle in, k (index, gate) pairs out one cycle later.
module topk_gate #(
    parameter int E = 16,      // experts
    parameter int K = 2,       // top-k
    parameter int WG = 18,     // gate width (unsigned)
    parameter int IW = (E > 1) ? $clog2(E) : 1  // expert index width
) (
    input  logic                      clk,
    input  logic                      rst,
    input  logic                      in_valid,
    input  logic [E*WG-1:0]           gates,   // gate e at bits [e*WG +: WG]
    output logic                      out_valid,
    output logic [K*IW-1:0]           idx,     // k-th choice at bits [k*IW +: IW]
    output logic [K*WG-1:0]           val
);
    logic [IW-1:0] sel_idx [K];
    logic [WG-1:0] sel_val [K];

    always_comb begin
        logic [E-1:0] taken;
        taken = '0;
        for (int k = 0; k < K; k++) begin
            logic found;
            found = 1'b0;
            sel_idx[k] = '0;
            sel_val[k] = '0;
            for (int e = 0; e < E; e++) begin
                // strictly greater while scanning upwards: ties keep the lower index
                if (!taken[e] && (!found || gates[e*WG +: WG] > sel_val[k])) begin
                    found = 1'b1;
                    sel_idx[k] = IW'(e);
                    sel_val[k] = gates[e*WG +: WG];
                end
            end
            taken[sel_idx[k]] = 1'b1;
        end
    end

    always_ff @(posedge clk) begin
        if (rst) out_valid <= 1'b0;
        else begin
            out_valid <= in_valid;
            for (int k = 0; k < K; k++) begin
                idx[k*IW +: IW] <= sel_idx[k];
                val[k*WG +: WG] <= sel_val[k];
            end
        end
    end
endmodule
