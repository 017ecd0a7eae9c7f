"""Docker's side of the plugin: the falcon app, the request schemas, the wire format."""
