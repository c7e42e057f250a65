"""Serving: the tritonserver launcher and the base classes of the python-backend stages."""
