# Vivado flow for an mtl-moe export (generated): ZCU104 block design with the Zynq UltraScale+ PS
# and the HLS IP, implementation, bitstream. Run after run_hls.tcl from the export folder:
#   vivado -mode batch -source build_vivado.tcl
# Writes bitstream/@IPNAME@.bit and bitstream/@IPNAME@.hwh (the PYNQ overlay pair), and Vivado's
# power, utilization and timing reports of the routed design next to them.
set ip_repo [file normalize hls_prj/sol1/impl/ip]
create_project -force vivado_prj vivado_prj -part @PART@
set_property board_part @BOARD@ [current_project]
set_property ip_repo_paths $ip_repo [current_project]
update_ip_catalog
create_bd_design design_1
create_bd_cell -type ip -vlnv xilinx.com:ip:zynq_ultra_ps_e zynq_ultra_ps_e_0
apply_bd_automation -rule xilinx.com:bd_rule:zynq_ultra_ps_e -config {apply_board_preset "1"} [get_bd_cells zynq_ultra_ps_e_0]
# PL clock = the design's clock; 128-bit S_AXI_HP0/HP1/HP3_FPD (PS8 names them S_AXI_GP2/GP3/GP5).
# Port map (mtl_moe.perf: WEIGHT_HP, IO_HP; UG1085 "PL-PS Interface Specifics"): HP1 and HP2 share one
# DDR-controller port (XPI 4), HP0 shares one with DisplayPort, HP3 one with the FPD DMA. The weight
# bundles take HP1 and HP3 (distinct XPIs), the small image/feature traffic takes HP0.
set_property -dict [list CONFIG.PSU__USE__S_AXI_GP2 {1} CONFIG.PSU__SAXIGP2__DATA_WIDTH {128} \
    CONFIG.PSU__USE__S_AXI_GP3 {1} CONFIG.PSU__SAXIGP3__DATA_WIDTH {128} \
    CONFIG.PSU__USE__S_AXI_GP5 {1} CONFIG.PSU__SAXIGP5__DATA_WIDTH {128} \
    CONFIG.PSU__FPGA_PL0_ENABLE {1} CONFIG.PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ {@CLOCK_MHZ@}] \
    [get_bd_cells zynq_ultra_ps_e_0]
create_bd_cell -type ip -vlnv @VENDOR@:@LIBRARY@:@IPNAME@:@VERSION@ mtl_moe_0
apply_bd_automation -rule xilinx.com:bd_rule:axi4 -config {Master "/zynq_ultra_ps_e_0/M_AXI_HPM0_FPD" Clk "Auto"} [get_bd_intf_pins mtl_moe_0/s_axi_control]
# every m_axi master of the IP to its HP port: weights (bundle gmem_w or gmem_w0) -> HP1, the second
# weight bundle (gmem_w1, weight_ports = 2) -> HP3, images/features (gmem_io) -> HP0
set hp_of {m_axi_gmem_w S_AXI_HP1_FPD m_axi_gmem_w0 S_AXI_HP1_FPD m_axi_gmem_w1 S_AXI_HP3_FPD \
           m_axi_gmem_io S_AXI_HP0_FPD}
foreach pin [get_bd_intf_pins -of_objects [get_bd_cells mtl_moe_0] -filter {MODE == Master}] {
    set port [get_property NAME $pin]
    if {![dict exists $hp_of $port]} { error "m_axi port $port of the IP has no HP port in build_vivado.tcl" }
    set hp [dict get $hp_of $port]
    apply_bd_automation -rule xilinx.com:bd_rule:axi4 -config [list Slave "/zynq_ultra_ps_e_0/$hp" Clk "Auto" Master "/mtl_moe_0/$port"] [get_bd_intf_pins zynq_ultra_ps_e_0/$hp]
}
# interrupt: ap_done through an AXI interrupt controller to the PS (what PYNQ's Interrupt expects)
create_bd_cell -type ip -vlnv xilinx.com:ip:axi_intc axi_intc_0
set_property -dict [list CONFIG.C_IRQ_CONNECTION {1}] [get_bd_cells axi_intc_0]
apply_bd_automation -rule xilinx.com:bd_rule:axi4 -config {Master "/zynq_ultra_ps_e_0/M_AXI_HPM0_FPD" Clk "Auto"} [get_bd_intf_pins axi_intc_0/s_axi]
connect_bd_net [get_bd_pins mtl_moe_0/interrupt] [get_bd_pins axi_intc_0/intr]
connect_bd_net [get_bd_pins axi_intc_0/irq] [get_bd_pins zynq_ultra_ps_e_0/pl_ps_irq0]
validate_bd_design
save_bd_design
make_wrapper -files [get_files design_1.bd] -top -import
launch_runs impl_1 -to_step write_bitstream -jobs 2
wait_on_run impl_1
file mkdir bitstream
# Vivado's estimates of the routed design (vectorless power, on-chip incl. the PS): mtl-moe perf
# on this export folder reports the power from here instead of none
open_run impl_1
report_power -file bitstream/power.rpt
report_utilization -file bitstream/utilization.rpt
report_timing_summary -file bitstream/timing.rpt
file copy -force [glob vivado_prj/vivado_prj.runs/impl_1/*.bit] bitstream/@IPNAME@.bit
file copy -force [glob vivado_prj/vivado_prj.gen/sources_1/bd/design_1/hw_handoff/design_1.hwh] bitstream/@IPNAME@.hwh
exit
