// Shared by the units that split a run of AXI beats into INCR bursts (accel_wfeat, accel_hrd,
// accel_hwr): the beats of the next burst from byte address a with `left` beats to go, at most
// `burst` (the bundle's max_burst) and never across a 4 KiB boundary (AXI4 forbids it), beats of
// `bytes` bytes. No `return` statements: Yosys' SystemVerilog reader does not take them.
function automatic logic [31:0] axi_burst_len(input logic [63:0] a, input logic [31:0] left, input int bytes,
                                              input int burst);
    logic [31:0] len, to_4k;
    to_4k = 32'((64'd4096 - (a & 64'hfff)) / 64'(bytes));
    len = left;
    if (len > 32'(burst)) len = 32'(burst);
    if (len > to_4k) len = to_4k;
    axi_burst_len = len;
endfunction
