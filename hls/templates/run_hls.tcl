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
if {[lsearch $steps csim] >= 0} { csim_design }
if {[lsearch $steps csynth] >= 0} { csynth_design }
if {[lsearch $steps cosim] >= 0} { cosim_design }
if {[lsearch $steps export] >= 0} {
    export_design -format ip_catalog -vendor @VENDOR@ -library @LIBRARY@ -ipname @IPNAME@ -version @VERSION@
}
exit
