// replaced by the metrics sources
