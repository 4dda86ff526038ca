"""Redis: rate limits and caches. Never a source of truth: with Redis down, money keeps
moving correctly, caches fall through to PostgreSQL, and the rate limiter fails open or
closed as configured."""
