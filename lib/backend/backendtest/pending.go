package backendtest

// Groups not written yet; each is replaced by its own file.
func atomicWriteTests() []testCase { return nil }
func badInputTests() []testCase    { return nil }
func expiryTests() []testCase      { return nil }
func watchTests() []testCase       { return nil }
func concurrencyTests() []testCase { return nil }
