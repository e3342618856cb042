// MAC tile of the shared linear unit: T_OUT x T_IN multipliers; each cycle adds W_tile . x to the
// T_OUT accumulators (exact: products of act x weight codes, accumulator of the accum type's width).
// `clear` starts a new sum with this beat. Two stages (multiply, accumulate), one beat per cycle.
module mac_tile #(
    parameter int T_IN = 16,
    parameter int T_OUT = 16,
    parameter int WA = 32,        // act width
    parameter int WW = 16,        // weight width
    parameter int WACC = 58       // accumulator width
) (
    input  logic                        clk,
    input  logic                        rst,
    input  logic                        in_valid,
    input  logic                        clear,
    input  logic [T_IN*WA-1:0]          x,      // x[u] at bits [u*WA +: WA]
    input  logic [T_OUT*T_IN*WW-1:0]    w,      // w[t][u] at bits [(t*T_IN+u)*WW +: WW]
    output logic                        out_valid,
    output logic [T_OUT*WACC-1:0]       acc     // acc[t] at bits [t*WACC +: WACC]
);
    localparam int WP = WA + WW + $clog2(T_IN + 1);  // a row of T_IN products, exact
    logic signed [WP-1:0] dot [T_OUT];
    logic v1, c1;
    logic signed [WACC-1:0] sum [T_OUT];

    // stage 1: T_OUT dot products of T_IN terms
    always_ff @(posedge clk) begin
        if (rst) v1 <= 1'b0;
        else begin
            v1 <= in_valid;
            c1 <= clear;
            for (int t = 0; t < T_OUT; t++) begin
                logic signed [WP-1:0] s;
                s = '0;
                for (int u = 0; u < T_IN; u++)
                    s = s + WP'($signed(x[u*WA +: WA])) * WP'($signed(w[(t*T_IN+u)*WW +: WW]));
                dot[t] <= s;
            end
        end
    end

    // stage 2: accumulate
    always_ff @(posedge clk) begin
        if (rst) out_valid <= 1'b0;
        else begin
            out_valid <= v1;
            if (v1)
                for (int t = 0; t < T_OUT; t++)
                    sum[t] <= (c1 ? WACC'(0) : sum[t]) + WACC'(dot[t]);
        end
    end

    always_comb
        for (int t = 0; t < T_OUT; t++) acc[t*WACC +: WACC] = sum[t];
endmodule
