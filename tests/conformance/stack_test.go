package conformance

const (
	secretKey  = "conformance-secret-key-not-for-production"
	publicBase = "https://chat.example.com"
)
