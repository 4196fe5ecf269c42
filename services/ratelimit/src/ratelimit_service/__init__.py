"""The edge's global rate limits: Envoy's `RateLimitService` over fixed windows in Redis."""
