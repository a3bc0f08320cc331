"""Volumes in (`volumes`) and segmentations out (`writers`), with their exact geometry."""
