"""Plugins: thin adapters that bring tasknas.core to host frameworks (MMDetection, MMSegmentation) and to
binary networks. Each subpackage may import tasknas.core; the core never imports a plugin."""
