"""`meterhouse run`: the ASGI app, its context, authentication, limits and wiring.

wiring.py is the composition place: the one module here that imports the product
packages (collectors, billing_sync) to plug their parts into the service.
"""
