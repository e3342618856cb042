// The AXI-Lite control block that Vitis HLS generates for an ap_ctrl_hs top (register map of
// mtl_moe.deploy.regmap, offsets passed in as parameters): control (ap_start / ap_done / ap_idle /
// ap_ready / auto_restart), global and IP interrupt enables, the interrupt status (toggle on write),
// the six arguments of mtl_moe_top as registers, and one read-only status word past them (regmap.json
// "status": the RTL top's run status; the HLS IP has no register there and reads 0, as does the
// DPI-C shell, which ties it to 0). One module, instantiated by both tops that
// stand behind this register map: mtl_moe_accel.sv (the C++ datapath through DPI-C) and
// accel_top.sv (the RTL sequencer), so the driver sees the same protocol from either.
//
// Protocol (as the HLS block): ap_start is set by a write of bit 0 to 0x00 and cleared when the core
// raises ap_ready (or kept with auto_restart); ap_done and ap_ready are sticky until 0x00 is read;
// ISR bit b is set when IER bit b is set and its event (b = 0: ap_done, b = 1: ap_ready) pulses;
// interrupt = GIE && (ISR != 0). Reads are registered one cycle after the address handshake.
module axi_lite_ctrl #(
    parameter int CTRL_ADDR_W = 7,     // AXI-Lite address width (regmap addr_width)
    parameter int OFF_WEIGHTS = 'h10,  // argument offsets (regmap args)
    parameter int OFF_WEIGHTS1 = 'h1c,
    parameter int OFF_IMAGES = 'h28,
    parameter int OFF_FEATURES = 'h34,
    parameter int OFF_TASK = 'h40,
    parameter int OFF_N_IMAGES = 'h48,
    parameter int OFF_STATUS = 'h50    // read-only status word past the HLS map (regmap "status")
) (
    input  logic ap_clk,
    input  logic ap_rst_n,
    input  logic [CTRL_ADDR_W-1:0] s_axi_control_AWADDR,
    input  logic s_axi_control_AWVALID,
    output logic s_axi_control_AWREADY,
    input  logic [31:0] s_axi_control_WDATA,
    input  logic [3:0] s_axi_control_WSTRB,
    input  logic s_axi_control_WVALID,
    output logic s_axi_control_WREADY,
    output logic [1:0] s_axi_control_BRESP,
    output logic s_axi_control_BVALID,
    input  logic s_axi_control_BREADY,
    input  logic [CTRL_ADDR_W-1:0] s_axi_control_ARADDR,
    input  logic s_axi_control_ARVALID,
    output logic s_axi_control_ARREADY,
    output logic [31:0] s_axi_control_RDATA,
    output logic [1:0] s_axi_control_RRESP,
    output logic s_axi_control_RVALID,
    input  logic s_axi_control_RREADY,
    // the core's side: start out, done / idle / ready in (ap_ctrl_hs), the interrupt line out
    output logic ap_start,
    input  logic ap_done,
    input  logic ap_idle,
    input  logic ap_ready,
    /* verilator lint_off SYMRSVDWORD */  // 'interrupt' is the Vitis HLS IP's port name
    output logic interrupt,
    /* verilator lint_on SYMRSVDWORD */
    output logic [63:0] arg_weights,
    output logic [63:0] arg_weights1,
    output logic [63:0] arg_images,
    output logic [63:0] arg_features,
    output logic [31:0] arg_task,
    output logic [31:0] arg_n_images,
    input  logic [31:0] status         // the core's status word, read at OFF_STATUS (0 from a core without one)
);
    wire rst = !ap_rst_n;
    logic int_ap_done, int_ap_ready, int_auto_restart, int_gie;
    logic [1:0] int_ier, int_isr;

    typedef enum logic [1:0] {WR_IDLE, WR_DATA, WR_RESP} wstate_t;
    wstate_t wstate;
    logic [CTRL_ADDR_W-1:0] waddr;
    wire aw_hs = s_axi_control_AWVALID && s_axi_control_AWREADY;
    wire w_hs = s_axi_control_WVALID && s_axi_control_WREADY;
    wire ar_hs = s_axi_control_ARVALID && s_axi_control_ARREADY;
    wire [31:0] wmask = {{8{s_axi_control_WSTRB[3]}}, {8{s_axi_control_WSTRB[2]}},
                         {8{s_axi_control_WSTRB[1]}}, {8{s_axi_control_WSTRB[0]}}};

    assign s_axi_control_AWREADY = (wstate == WR_IDLE);
    assign s_axi_control_WREADY = (wstate == WR_DATA);
    assign s_axi_control_BRESP = 2'b00;
    assign s_axi_control_BVALID = (wstate == WR_RESP);
    assign s_axi_control_ARREADY = !s_axi_control_RVALID;
    assign s_axi_control_RRESP = 2'b00;

    always_ff @(posedge ap_clk) begin
        if (rst) wstate <= WR_IDLE;
        else case (wstate)
            WR_IDLE: if (aw_hs) begin wstate <= WR_DATA; waddr <= s_axi_control_AWADDR; end
            WR_DATA: if (w_hs) wstate <= WR_RESP;
            WR_RESP: if (s_axi_control_BREADY) wstate <= WR_IDLE;
            default: wstate <= WR_IDLE;
        endcase
    end

    function automatic logic [31:0] merge(input logic [31:0] old);
        return (s_axi_control_WDATA & wmask) | (old & ~wmask);
    endfunction

    // register writes, ap_start (cleared on handshake), done/ready (clear on read), ISR (toggle on write)
    wire wr_ctrl = w_hs && waddr == CTRL_ADDR_W'(0);
    wire rd_ctrl = ar_hs && s_axi_control_ARADDR == CTRL_ADDR_W'(0);
    always_ff @(posedge ap_clk) begin
        if (rst) begin
            ap_start <= 0; int_ap_done <= 0; int_ap_ready <= 0; int_auto_restart <= 0; int_gie <= 0;
            int_ier <= 0; int_isr <= 0; arg_weights <= 0; arg_weights1 <= 0; arg_images <= 0; arg_features <= 0;
            arg_task <= 0; arg_n_images <= 0;
        end else begin
            if (wr_ctrl && s_axi_control_WSTRB[0] && s_axi_control_WDATA[0]) ap_start <= 1;
            else if (ap_ready) ap_start <= int_auto_restart;
            if (ap_done) int_ap_done <= 1; else if (rd_ctrl) int_ap_done <= 0;
            if (ap_ready) int_ap_ready <= 1; else if (rd_ctrl) int_ap_ready <= 0;
            if (wr_ctrl && s_axi_control_WSTRB[0]) int_auto_restart <= s_axi_control_WDATA[7];
            if (w_hs && waddr == CTRL_ADDR_W'('h4) && s_axi_control_WSTRB[0]) int_gie <= s_axi_control_WDATA[0];
            if (w_hs && waddr == CTRL_ADDR_W'('h8) && s_axi_control_WSTRB[0]) int_ier <= s_axi_control_WDATA[1:0];
            for (int b = 0; b < 2; b++) begin
                if (int_ier[b] && (b == 0 ? ap_done : ap_ready)) int_isr[b] <= 1;
                else if (w_hs && waddr == CTRL_ADDR_W'('hc) && s_axi_control_WSTRB[0] && s_axi_control_WDATA[b])
                    int_isr[b] <= ~int_isr[b];
            end
            if (w_hs) begin
                if (waddr == CTRL_ADDR_W'(OFF_WEIGHTS)) arg_weights[31:0] <= merge(arg_weights[31:0]);
                if (waddr == CTRL_ADDR_W'(OFF_WEIGHTS + 4)) arg_weights[63:32] <= merge(arg_weights[63:32]);
                if (waddr == CTRL_ADDR_W'(OFF_WEIGHTS1)) arg_weights1[31:0] <= merge(arg_weights1[31:0]);
                if (waddr == CTRL_ADDR_W'(OFF_WEIGHTS1 + 4)) arg_weights1[63:32] <= merge(arg_weights1[63:32]);
                if (waddr == CTRL_ADDR_W'(OFF_IMAGES)) arg_images[31:0] <= merge(arg_images[31:0]);
                if (waddr == CTRL_ADDR_W'(OFF_IMAGES + 4)) arg_images[63:32] <= merge(arg_images[63:32]);
                if (waddr == CTRL_ADDR_W'(OFF_FEATURES)) arg_features[31:0] <= merge(arg_features[31:0]);
                if (waddr == CTRL_ADDR_W'(OFF_FEATURES + 4)) arg_features[63:32] <= merge(arg_features[63:32]);
                if (waddr == CTRL_ADDR_W'(OFF_TASK)) arg_task <= merge(arg_task);
                if (waddr == CTRL_ADDR_W'(OFF_N_IMAGES)) arg_n_images <= merge(arg_n_images);
            end
        end
    end
    assign interrupt = int_gie && (|int_isr);

    // read data, registered one cycle after the address handshake
    always_ff @(posedge ap_clk) begin
        if (rst) s_axi_control_RVALID <= 0;
        else if (ar_hs) begin
            s_axi_control_RVALID <= 1;
            case (s_axi_control_ARADDR)
                CTRL_ADDR_W'(0): s_axi_control_RDATA <= {22'b0, interrupt, 1'b0, int_auto_restart, 3'b0,
                                                        int_ap_ready, ap_idle, int_ap_done, ap_start};
                CTRL_ADDR_W'('h4): s_axi_control_RDATA <= {31'b0, int_gie};
                CTRL_ADDR_W'('h8): s_axi_control_RDATA <= {30'b0, int_ier};
                CTRL_ADDR_W'('hc): s_axi_control_RDATA <= {30'b0, int_isr};
                CTRL_ADDR_W'(OFF_WEIGHTS): s_axi_control_RDATA <= arg_weights[31:0];
                CTRL_ADDR_W'(OFF_WEIGHTS + 4): s_axi_control_RDATA <= arg_weights[63:32];
                CTRL_ADDR_W'(OFF_WEIGHTS1): s_axi_control_RDATA <= arg_weights1[31:0];
                CTRL_ADDR_W'(OFF_WEIGHTS1 + 4): s_axi_control_RDATA <= arg_weights1[63:32];
                CTRL_ADDR_W'(OFF_IMAGES): s_axi_control_RDATA <= arg_images[31:0];
                CTRL_ADDR_W'(OFF_IMAGES + 4): s_axi_control_RDATA <= arg_images[63:32];
                CTRL_ADDR_W'(OFF_FEATURES): s_axi_control_RDATA <= arg_features[31:0];
                CTRL_ADDR_W'(OFF_FEATURES + 4): s_axi_control_RDATA <= arg_features[63:32];
                CTRL_ADDR_W'(OFF_TASK): s_axi_control_RDATA <= arg_task;
                CTRL_ADDR_W'(OFF_N_IMAGES): s_axi_control_RDATA <= arg_n_images;
                CTRL_ADDR_W'(OFF_STATUS): s_axi_control_RDATA <= status;
                default: s_axi_control_RDATA <= 0;
            endcase
        end else if (s_axi_control_RREADY) s_axi_control_RVALID <= 0;
    end

endmodule
