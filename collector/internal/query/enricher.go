package query

import "netwatch.dev/collector/internal/enrich"

// SetEnricher gives the service what it knows of addresses (DNS names, AS,
// country); nil: nothing. Call it before serving.
func (s *Service) SetEnricher(e enrich.Enricher) { s.enricher = e }
