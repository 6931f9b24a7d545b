"""Unit tests for iwork_mc.smpp, the sans-I/O SMPP 3.4 engine."""
