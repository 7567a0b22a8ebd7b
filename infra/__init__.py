"""Pulumi program: a secure AWS GPU Ray cluster for the deployment spec."""
