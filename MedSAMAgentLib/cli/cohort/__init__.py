"""Cohort runs (`medsam-agent batch`, and `eval`'s cases): a manifest's rows, checked first,
resumable, on local worker processes, a department server or a Ray cluster. Importing this
package loads neither Ray nor any model code."""
