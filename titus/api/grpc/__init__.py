"""Titus's gRPC JobManagementService, served next to REST over the same service layer."""
