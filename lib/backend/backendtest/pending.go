package backendtest

// Groups not written yet; each is replaced by its own file.
func expiryTests() []testCase      { return nil }
func watchTests() []testCase       { return nil }
func concurrencyTests() []testCase { return nil }
