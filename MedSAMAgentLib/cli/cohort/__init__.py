"""Cohort runs (`medsam-agent batch`): a manifest's rows as `segment` runs, checked first,
resumable, on local worker processes, a department server or a Ray cluster. Importing this
package loads neither Ray nor any model code."""
