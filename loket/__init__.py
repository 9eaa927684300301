"""The composition root: the one package that knows every room.

`loket.app.create_app` wires the hub's blueprints, the back office and the web extensions;
`loket.cli` is the `loket` command; `loket.devrun` starts the whole system for a newcomer.
Rooms below (hub, adapters, mappings, scheduler, admin) never import this package.
"""
