"""Tables, plotly figures, the chart captions and the exported HTML/CSV/JSON report of stored runs."""
