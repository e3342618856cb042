// exp_neg (mtl_moe/nonlinear.py exp_neg, ARITHMETIC.md): e^-a for a >= 0 on the exp grid, the one
// copy of this arithmetic that softmax_unit.sv (stage 3), accel_router.sv (exp_of) and accel_attn.sv
// (A.V weights) share. With u = a * log2(e) (uf fractional bits): n = floor(u), f = frac(u);
// 2^-f from the 2^-f table at the step below f, linearly interpolated to the next entry with the
// (uf - estep) position bits below the step, shifted right by n onto the exp grid with exp's
// rounding (one rounding), 0 once 2^-n is below half an exp LSB (n >= ef + 2), fit to exp (ew bits).
//
// The including module declares the table first, as `logic [ETW-1:0] etab [0:EN-1]` ($readmemh of
// mtl_moe.rtl.softmax_parameters' softmax_exp.mem): the function reads it by that name.
// Everything is 64-bit: u (score width + log2e width) and the interpolated 2^-f (entry width +
// position bits) must stay below 62 bits, which mtl_moe.rtl.softmax_parameters checks.
// The caller forms u = a * log2e (exact: the product's full width) in its own pipeline stage.
// Returns {overflow, 64-bit e}: overflow when e left exp's width (e saturated if e_sat, else wrapped).
// No `return` statements: Yosys' SystemVerilog reader does not take them.
function automatic logic [64:0] exp_neg_u(input longint u, input int uf, input int estep, input int etw,
                                          input int etf, input int ef, input int ew, input int e_round,
                                          input int e_sat);
    longint n, fp, fr, t0, t1, v, q, emax;
    int er, sh, idx;
    logic rb, stk, up, big;
    er = uf - estep;                                  // position bits below one table step
    n = u >>> uf;
    fp = u & ((64'sd1 <<< uf) - 1);
    idx = int'(fp >>> er);
    fr = fp & ((64'sd1 <<< er) - 1);
    t0 = longint'(etab[idx]);
    t1 = longint'(etab[idx + 1]);
    v = ((t0 <<< er) + (t1 - t0) * fr) & ((64'sd1 <<< (etw + er)) - 1);  // 2^-f: etf + er fraction bits,
                                                      // in [0, 2^(etw + er)): the mask is exact
    sh = etf + er - ef + ((n < longint'(ef) + 64'sd2) ? int'(n) : ef + 2);  // bounded barrel shift (>= 1)
    q = v >>> sh;
    rb = v[sh - 1];
    stk = |(v & ((64'sd1 <<< (sh - 1)) - 1));
    up = (e_round == 1) ? rb : (e_round == 2) ? (rb & (stk | q[0])) : 1'b0;
    q = q + longint'(up);
    if (n >= longint'(ef) + 64'sd2) q = 0;                // below half an exp LSB: 0 in every mode
    emax = (64'sd1 <<< ew) - 1;
    big = q > emax;
    exp_neg_u = {big, (big && e_sat != 0) ? emax : (q & emax)};
endfunction

