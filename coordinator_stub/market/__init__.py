"""The marketplace: GPUs, search, status, bookings (no double booking), reviews, pricing, offers."""
