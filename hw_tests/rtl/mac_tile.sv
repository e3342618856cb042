// MAC tile of the shared linear unit: T_OUT x T_IN multipliers; each cycle adds W_tile . x to the
// T_OUT accumulators (exact: products of act x weight codes, accumulator of the accum type's width).
// `clear` starts a new sum with this beat. Two stages (multiply, accumulate), one beat per cycle.
//
// PACK2 = 1 (narrow operands, mtl_moe.hw.mac_pack2): output rows 2j and 2j+1 share one multiplier
// per input u, because they multiply the same x[u]. One 27x18 multiply of x[u] by
// (w[2j][u] << PACK_SHIFT) + w[2j+1][u] gives both products: the low PACK_SHIFT bits, read as a
// signed number, are x*w[2j+1] (|x*w| < 2^(PACK_SHIFT-1)); the rest, minus that low field, shifted
// down, is x*w[2j] -- two MACs per DSP48E2 (Xilinx WP486's INT8 packing, with a signed low field).
module mac_tile #(
    parameter int T_IN = 16,
    parameter int T_OUT = 16,
    parameter int WA = 32,        // act width
    parameter int WW = 16,        // weight width
    parameter int WACC = 58,      // accumulator width
    parameter int PACK2 = 0,      // two MACs per multiplier (needs WA + WW <= PACK_SHIFT, WW <= 8)
    parameter int PACK_SHIFT = 18
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
    localparam int N_PAIR = PACK2 != 0 ? T_OUT / 2 : 0;    // packed row pairs; an odd last row is unpacked
    localparam int WPK = WW + PACK_SHIFT + 1;         // (w_hi << PACK_SHIFT) + w_lo, signed
    localparam int WPR = WPK + WA;                    // its product with x
    logic signed [WP-1:0] dot [T_OUT];
    logic v1, c1;
    logic signed [WACC-1:0] sum [T_OUT];

    initial begin
        if (PACK2 != 0 && (WA + WW > PACK_SHIFT || WPK > 27 || WA > 18))
            $error("mac_tile: PACK2 needs WA + WW <= %0d and a 27x18 multiply (WA=%0d, WW=%0d)",
                   PACK_SHIFT, WA, WW);
    end

    // stage 1: T_OUT dot products of T_IN terms
    always_ff @(posedge clk) begin
        if (rst) v1 <= 1'b0;
        else begin
            v1 <= in_valid;
            c1 <= clear;
            for (int j = 0; j < N_PAIR; j++) begin
                logic signed [WP-1:0] s_hi, s_lo;
                s_hi = '0;
                s_lo = '0;
                for (int u = 0; u < T_IN; u++) begin
                    logic signed [WPK-1:0] wp;
                    logic signed [WPR-1:0] p;
                    logic signed [PACK_SHIFT-1:0] lo;
                    wp = (WPK'($signed(w[(2*j*T_IN+u)*WW +: WW])) <<< PACK_SHIFT)
                       + WPK'($signed(w[((2*j+1)*T_IN+u)*WW +: WW]));
                    p = WPR'($signed(x[u*WA +: WA])) * WPR'(wp);
                    lo = p[PACK_SHIFT-1:0];
                    s_lo = s_lo + WP'(lo);
                    s_hi = s_hi + WP'((p - WPR'(lo)) >>> PACK_SHIFT);
                end
                dot[2*j] <= s_hi;
                dot[2*j+1] <= s_lo;
            end
            for (int t = 2 * N_PAIR; t < T_OUT; t++) begin
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
