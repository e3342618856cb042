"""Running an exported accelerator: register map, ap_ctrl_hs protocol, backends, PYNQ driver.

``Accelerator(export_dir, backend="sim"|"pynq"|"auto").infer(image, task)`` is the user's entry
point; the register programs of :mod:`mtl_moe.deploy.protocol` are shared by every backend.
"""
