"""Media pipelines run by consumer handlers: structured text, frames, summaries."""
