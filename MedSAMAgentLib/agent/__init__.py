"""MedSAM-Agent: a vision-language policy places box and point prompts on a slice, one
tool call per turn, watching the mask it gets back, until it stops."""
