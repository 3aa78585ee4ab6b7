"""UI panels: thin Gradio callbacks over :class:`backends.lab.Lab` plus pure formatters."""
