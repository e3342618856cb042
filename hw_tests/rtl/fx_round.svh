// Shared by the units that round a 64-bit intermediate once onto their output grid: value / 2^shift
// with the output type's rounding (0 TRN: floor, 1 RND: half up, 2 RND_CONV: half to even), the RTL
// twin of shift_round in mtl_moe/fixed.py and hls/include/mtl_moe/fixed.h (shift <= 0 multiplies).
// No `return` statements: Yosys' SystemVerilog reader does not take them.
function automatic longint shift_round(input longint fx_value, input int fx_shift, input int fx_mode);
    longint q, rem, half;
    if (fx_shift <= 0) q = fx_value <<< -fx_shift;
    else begin
        q = fx_value >>> fx_shift;
        rem = fx_value & ((64'sd1 <<< fx_shift) - 1);
        half = 64'sd1 <<< (fx_shift - 1);
        if (fx_mode == 1 && rem >= half) q = q + 1;
        if (fx_mode == 2 && (rem > half || (rem == half && q[0]))) q = q + 1;
    end
    shift_round = q;
endfunction
