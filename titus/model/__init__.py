"""The job and task model: the Titus v3 JSON shape, states, reasons and validation. No I/O."""
