"""Outbound sync of call outcomes to CRMs (no Qt here)."""
