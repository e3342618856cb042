# Vitis HLS flow for an mtl-moe export (generated; run from the export folder):
#   vitis_hls -f run_hls.tcl            (csim, csynth, cosim, export_design)
# Environment overrides: MTL_MOE_STEPS="csim csynth cosim export" selects steps.
set steps {csim csynth cosim export}
if {[info exists ::env(MTL_MOE_STEPS)]} { set steps $::env(MTL_MOE_STEPS) }
open_project -reset hls_prj
set_top mtl_moe_top
add_files top.cpp -cflags "-I. -I@HLS_INCLUDE@ -std=c++14"
add_files -tb tb.cpp -cflags "-I. -I@HLS_INCLUDE@ -std=c++14 -DTB_TASK=@TB_TASK@ -DTB_WEIGHT_BYTES=@WEIGHT_BYTES@"
add_files -tb weights.bin
add_files -tb tb_input.i64
add_files -tb tb_expected.i64
open_solution -reset sol1 -flow_target vivado
set_part @PART@
create_clock -period @CLOCK_NS@ -name default
# AXI masters (UG1399 config_interface; each m_axi pragma in top.cpp states the same per port): buffers
# 64-byte aligned (the driver allocates them page aligned; weights.bin tensors start on an AXI word),
# @AXI_LATENCY@ cycles of expected read latency (the board's first-beat latency at this clock, as the perf model
# and the RTL take it) so requests are issued that far ahead, bursts of one weight tile per port with
# @RD_OUTSTANDING@ outstanding (covering @RD_AHEAD_BEATS@ beats of latency x rate: hls_export.axi_readahead).
# The ports are already AXI-word wide (ap_uint<AXI_BITS>; max_widen_bitwidth on each port in top.cpp).
config_interface -m_axi_alignment_byte_size 64 -m_axi_latency @AXI_LATENCY@ \
    -m_axi_max_read_burst_length @RD_BURST@ -m_axi_num_read_outstanding @RD_OUTSTANDING@ \
    -m_axi_max_write_burst_length @IO_BURST@ -m_axi_num_write_outstanding @IO_WR_OUTSTANDING@
if {[lsearch $steps csim] >= 0} { csim_design }
if {[lsearch $steps csynth] >= 0} { csynth_design }
if {[lsearch $steps cosim] >= 0} { cosim_design }
if {[lsearch $steps export] >= 0} {
    export_design -format ip_catalog -vendor @VENDOR@ -library @LIBRARY@ -ipname @IPNAME@ -version @VERSION@
}
exit
