package apiserver

// routesResources registers the onboarding and resources endpoints.
// (Filled in by the onboarding work.)
func (s *Server) routesResources() {}
