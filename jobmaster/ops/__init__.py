"""Operations: hooks around enqueues and attempts (:mod:`.middleware`), Prometheus metrics
(:mod:`.metrics`) and webhook notifications (:mod:`.webhooks`, :mod:`.deliveries`)."""
