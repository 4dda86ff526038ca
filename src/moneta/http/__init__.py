"""HTTP plumbing shared by every router: problem+json errors, body limits, paging, types."""
