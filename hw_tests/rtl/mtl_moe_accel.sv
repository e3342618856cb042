// The accelerator behind its real interface: the AXI-Lite control block that Vitis HLS generates
// for ap_ctrl_hs (register map of mtl_moe.deploy.regmap, offsets passed in as parameters), and
// AXI4 masters to DDR (bundle gmem_w: weights, read only; bundle gmem_io: images in, features out).
//
// The datapath is the exported C++ top function itself (the code the C-sim compiles), linked in
// through DPI-C (mtl_moe_accel_dpi.cpp): no open-source tool turns Vitis C++ into RTL. The shell
// moves every byte the top function reads or writes across the AXI4 masters — weights and images
// are fetched in bursts before the call, features written back in bursts after it — so register
// protocol, memory layout, burst/strobe handling and bit-exactness are what a board would see; the
// cycle count is the bus traffic's only (the C++ call takes no simulated time).
//
// The top's second weight pointer, weights1 (bundle gmem_w1 when the export has weight_ports = 2),
// is a register pair like the others, written and read back; the host programs it with the weights
// address. This shell still fetches the whole blob once through its one m_axi_gmem_w master and
// hands that copy to both weight pointers of the C++ top: it has no m_axi_gmem_w1 master.
//
// Naming follows Vitis HLS IP ports (ap_clk, ap_rst_n, s_axi_control_*, m_axi_<bundle>_*, interrupt).
module mtl_moe_accel #(
    parameter int CTRL_ADDR_W = 7,     // AXI-Lite address width (regmap addr_width)
    parameter int OFF_WEIGHTS = 'h10,  // argument offsets (regmap args)
    parameter int OFF_WEIGHTS1 = 'h1c,
    parameter int OFF_IMAGES = 'h28,
    parameter int OFF_FEATURES = 'h34,
    parameter int OFF_TASK = 'h40,
    parameter int OFF_N_IMAGES = 'h48,
    parameter int AXI_BITS = 256,      // m_axi data width (KernelParams.axi_bits)
    parameter int WEIGHT_BYTES = 32,   // weights.bin size
    parameter int IMAGE_BYTES = 32,    // one image as stored (regmap buffer_sizes)
    parameter int FEATURE_BYTES = 32,  // one feature map as stored
    parameter int BURST = 16           // beats per burst (Vitis' default max_read/write_burst_length)
) (
    input  logic ap_clk,
    input  logic ap_rst_n,
    /* verilator lint_off SYMRSVDWORD */  // 'interrupt' is the Vitis HLS IP's port name
    output logic interrupt,
    /* verilator lint_on SYMRSVDWORD */
    // AXI-Lite control slave
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
    // AXI4 master gmem_w (read channels only)
    output logic [0:0] m_axi_gmem_w_ARID,
    output logic [63:0] m_axi_gmem_w_ARADDR,
    output logic [7:0] m_axi_gmem_w_ARLEN,
    output logic [2:0] m_axi_gmem_w_ARSIZE,
    output logic [1:0] m_axi_gmem_w_ARBURST,
    output logic m_axi_gmem_w_ARLOCK,
    output logic [3:0] m_axi_gmem_w_ARCACHE,
    output logic [2:0] m_axi_gmem_w_ARPROT,
    output logic m_axi_gmem_w_ARVALID,
    input  logic m_axi_gmem_w_ARREADY,
    input  logic [0:0] m_axi_gmem_w_RID,
    input  logic [AXI_BITS-1:0] m_axi_gmem_w_RDATA,
    input  logic [1:0] m_axi_gmem_w_RRESP,
    input  logic m_axi_gmem_w_RLAST,
    input  logic m_axi_gmem_w_RVALID,
    output logic m_axi_gmem_w_RREADY,
    // AXI4 master gmem_io
    output logic [0:0] m_axi_gmem_io_AWID,
    output logic [63:0] m_axi_gmem_io_AWADDR,
    output logic [7:0] m_axi_gmem_io_AWLEN,
    output logic [2:0] m_axi_gmem_io_AWSIZE,
    output logic [1:0] m_axi_gmem_io_AWBURST,
    output logic m_axi_gmem_io_AWLOCK,
    output logic [3:0] m_axi_gmem_io_AWCACHE,
    output logic [2:0] m_axi_gmem_io_AWPROT,
    output logic m_axi_gmem_io_AWVALID,
    input  logic m_axi_gmem_io_AWREADY,
    output logic [AXI_BITS-1:0] m_axi_gmem_io_WDATA,
    output logic [AXI_BITS/8-1:0] m_axi_gmem_io_WSTRB,
    output logic m_axi_gmem_io_WLAST,
    output logic m_axi_gmem_io_WVALID,
    input  logic m_axi_gmem_io_WREADY,
    input  logic [0:0] m_axi_gmem_io_BID,
    input  logic [1:0] m_axi_gmem_io_BRESP,
    input  logic m_axi_gmem_io_BVALID,
    output logic m_axi_gmem_io_BREADY,
    output logic [0:0] m_axi_gmem_io_ARID,
    output logic [63:0] m_axi_gmem_io_ARADDR,
    output logic [7:0] m_axi_gmem_io_ARLEN,
    output logic [2:0] m_axi_gmem_io_ARSIZE,
    output logic [1:0] m_axi_gmem_io_ARBURST,
    output logic m_axi_gmem_io_ARLOCK,
    output logic [3:0] m_axi_gmem_io_ARCACHE,
    output logic [2:0] m_axi_gmem_io_ARPROT,
    output logic m_axi_gmem_io_ARVALID,
    input  logic m_axi_gmem_io_ARREADY,
    input  logic [0:0] m_axi_gmem_io_RID,
    input  logic [AXI_BITS-1:0] m_axi_gmem_io_RDATA,
    input  logic [1:0] m_axi_gmem_io_RRESP,
    input  logic m_axi_gmem_io_RLAST,
    input  logic m_axi_gmem_io_RVALID,
    output logic m_axi_gmem_io_RREADY
);
    localparam int BYTES = AXI_BITS / 8;
    localparam int SIZE = $clog2(BYTES);
    localparam int BUF_WEIGHTS = 0, BUF_IMAGES = 1, BUF_FEATURES = 2;

    import "DPI-C" function void accel_put(input int buf_id, input int beat, input bit [AXI_BITS-1:0] data);
    import "DPI-C" function void accel_get(input int buf_id, input int beat, output bit [AXI_BITS-1:0] data);
    import "DPI-C" function void accel_compute(input int task_id, input int n_images);

    wire rst = !ap_rst_n;
    // Vitis HLS m_axi adapters ignore IDs and responses too (single ID, no error path to the core)
    /* verilator lint_off UNUSEDSIGNAL */
    wire unused_resp = ^{m_axi_gmem_w_RID, m_axi_gmem_w_RRESP, m_axi_gmem_io_RID, m_axi_gmem_io_RRESP,
                         m_axi_gmem_io_BID, m_axi_gmem_io_BRESP};
    /* verilator lint_on UNUSEDSIGNAL */

    // ---------------- AXI-Lite control block (ap_ctrl_hs): axi_lite_ctrl.sv ----------------
    logic ap_start, ap_done, ap_idle, ap_ready;
    logic [63:0] arg_weights, arg_images, arg_features;
    /* verilator lint_off UNUSEDSIGNAL */  // weights1: a register only (this shell has one weight master)
    logic [63:0] arg_weights1;
    /* verilator lint_on UNUSEDSIGNAL */
    logic [31:0] arg_task, arg_n_images;
    axi_lite_ctrl #(.CTRL_ADDR_W(CTRL_ADDR_W), .OFF_WEIGHTS(OFF_WEIGHTS), .OFF_WEIGHTS1(OFF_WEIGHTS1),
                    .OFF_IMAGES(OFF_IMAGES), .OFF_FEATURES(OFF_FEATURES), .OFF_TASK(OFF_TASK),
                    .OFF_N_IMAGES(OFF_N_IMAGES)) ctrl (
        .ap_clk, .ap_rst_n, .s_axi_control_AWADDR, .s_axi_control_AWVALID, .s_axi_control_AWREADY,
        .s_axi_control_WDATA, .s_axi_control_WSTRB, .s_axi_control_WVALID, .s_axi_control_WREADY,
        .s_axi_control_BRESP, .s_axi_control_BVALID, .s_axi_control_BREADY, .s_axi_control_ARADDR,
        .s_axi_control_ARVALID, .s_axi_control_ARREADY, .s_axi_control_RDATA, .s_axi_control_RRESP,
        .s_axi_control_RVALID, .s_axi_control_RREADY, .ap_start, .ap_done, .ap_idle, .ap_ready, .interrupt,
        .arg_weights, .arg_weights1, .arg_images, .arg_features, .arg_task, .arg_n_images,
        .status(32'b0));  // no status word: reads 0, as the HLS IP's unmapped address

    // ---------------- the core: fetch weights and images, compute, write features ----------------
    typedef enum logic [2:0] {S_IDLE, S_AR, S_R, S_COMPUTE, S_AW, S_W, S_B, S_DONE} state_t;
    state_t state;
    logic [1:0] region;           // BUF_WEIGHTS / BUF_IMAGES while reading
    logic [63:0] addr;            // next burst address
    logic [31:0] beats, beat;     // beats in the region, beats done
    logic [31:0] burst_left;      // beats left in the current write burst
    logic [31:0] tail_bytes;      // valid bytes of the region's last beat
    logic [31:0] task_q, n_q;
    logic [AXI_BITS-1:0] wdata;

    function automatic logic [31:0] beats_of(input logic [63:0] nbytes);
        return 32'((nbytes + 64'(BYTES - 1)) / 64'(BYTES));
    endfunction
    function automatic logic [7:0] len_of(input logic [31:0] left);
        return 8'((left > 32'(BURST) ? 32'(BURST) : left) - 1);
    endfunction

    wire use_w = (region == 2'(BUF_WEIGHTS));
    wire r_valid = use_w ? m_axi_gmem_w_RVALID : m_axi_gmem_io_RVALID;
    wire r_last = use_w ? m_axi_gmem_w_RLAST : m_axi_gmem_io_RLAST;
    wire [AXI_BITS-1:0] r_data = use_w ? m_axi_gmem_w_RDATA : m_axi_gmem_io_RDATA;
    wire ar_ready = use_w ? m_axi_gmem_w_ARREADY : m_axi_gmem_io_ARREADY;

    assign ap_idle = (state == S_IDLE);
    assign ap_done = (state == S_DONE);
    assign ap_ready = (state == S_DONE);

    assign m_axi_gmem_w_ARVALID = (state == S_AR) && use_w;
    assign m_axi_gmem_io_ARVALID = (state == S_AR) && !use_w;
    assign m_axi_gmem_w_RREADY = (state == S_R) && use_w;
    assign m_axi_gmem_io_RREADY = (state == S_R) && !use_w;
    assign m_axi_gmem_w_ARADDR = addr;
    assign m_axi_gmem_io_ARADDR = addr;
    assign m_axi_gmem_w_ARLEN = len_of(beats - beat);
    assign m_axi_gmem_io_ARLEN = len_of(beats - beat);
    assign m_axi_gmem_io_AWADDR = addr;
    assign m_axi_gmem_io_AWLEN = len_of(beats - beat);
    assign m_axi_gmem_io_AWVALID = (state == S_AW);
    assign m_axi_gmem_io_WVALID = (state == S_W);
    assign m_axi_gmem_io_WDATA = wdata;
    assign m_axi_gmem_io_WLAST = (state == S_W) && burst_left == 1;
    assign m_axi_gmem_io_WSTRB = (beat == beats - 1) ? {BYTES{1'b1}} >> (BYTES - tail_bytes)
                                                     : {BYTES{1'b1}};
    assign m_axi_gmem_io_BREADY = (state == S_B);
    // fixed burst attributes: INCR bursts of full-width beats, normal access, no cache hints
    assign m_axi_gmem_w_ARID = 0, m_axi_gmem_io_ARID = 0, m_axi_gmem_io_AWID = 0;
    assign m_axi_gmem_w_ARSIZE = 3'(SIZE), m_axi_gmem_io_ARSIZE = 3'(SIZE), m_axi_gmem_io_AWSIZE = 3'(SIZE);
    assign m_axi_gmem_w_ARBURST = 2'b01, m_axi_gmem_io_ARBURST = 2'b01, m_axi_gmem_io_AWBURST = 2'b01;
    assign m_axi_gmem_w_ARLOCK = 0, m_axi_gmem_io_ARLOCK = 0, m_axi_gmem_io_AWLOCK = 0;
    assign m_axi_gmem_w_ARCACHE = 4'b0011, m_axi_gmem_io_ARCACHE = 4'b0011, m_axi_gmem_io_AWCACHE = 4'b0011;
    assign m_axi_gmem_w_ARPROT = 0, m_axi_gmem_io_ARPROT = 0, m_axi_gmem_io_AWPROT = 0;

    function automatic logic [31:0] tail(input logic [63:0] nbytes);
        return (nbytes % 64'(BYTES)) == 0 ? 32'(BYTES) : 32'(nbytes % 64'(BYTES));
    endfunction

    always_ff @(posedge ap_clk) begin
        if (rst) begin
            state <= S_IDLE;
        end else case (state)
            S_IDLE: if (ap_start) begin
                task_q <= arg_task;
                n_q <= arg_n_images;
                region <= 2'(BUF_WEIGHTS);
                addr <= arg_weights;
                beats <= beats_of(64'(WEIGHT_BYTES)); beat <= 0;
                state <= S_AR;
            end
            S_AR: if (ar_ready) state <= S_R;
            S_R: if (r_valid) begin
                accel_put(32'(region), 32'(beat), r_data);
                beat <= beat + 1;
                if (r_last) begin
                    addr <= addr + 64'(BURST * BYTES);
                    if (beat + 1 < beats) state <= S_AR;
                    else if (region == 2'(BUF_WEIGHTS) && n_q != 0) begin  // then the images
                        region <= 2'(BUF_IMAGES);
                                addr <= arg_images;
                        beats <= beats_of(64'(n_q) * 64'(IMAGE_BYTES)); beat <= 0;
                        state <= S_AR;
                    end else state <= S_COMPUTE;
                end
            end
            S_COMPUTE: begin
                accel_compute(task_q, n_q);  // the exported top function, in zero simulated time
                addr <= arg_features;
                beats <= beats_of(64'(n_q) * 64'(FEATURE_BYTES)); beat <= 0;
                tail_bytes <= tail(64'(n_q) * 64'(FEATURE_BYTES));
                state <= (n_q == 0) ? S_DONE : S_AW;
            end
            S_AW: if (m_axi_gmem_io_AWREADY) begin
                burst_left <= 32'(len_of(beats - beat)) + 1;
                accel_get(BUF_FEATURES, beat, wdata);
                state <= S_W;
            end
            S_W: if (m_axi_gmem_io_WREADY) begin
                beat <= beat + 1;
                burst_left <= burst_left - 1;
                if (burst_left == 1) state <= S_B;
                else accel_get(BUF_FEATURES, beat + 1, wdata);
            end
            S_B: if (m_axi_gmem_io_BVALID) begin
                addr <= addr + 64'(BURST * BYTES);
                state <= (beat < beats) ? S_AW : S_DONE;
            end
            S_DONE: state <= S_IDLE;
            default: state <= S_IDLE;
        endcase
    end
endmodule
