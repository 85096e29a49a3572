"""Exchanges, one wing each: everything that speaks an exchange's formats, routes and endpoints.
The rest of the kit sees them through ``sources.base.Source`` and the history readers."""
