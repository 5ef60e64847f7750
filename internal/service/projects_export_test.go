package service

// FailAfterFirstMove makes a migration fail right after it moved its first
// Service, so tests can prove the transaction leaves the Project untouched.
func FailAfterFirstMove(o *MigrationOptions) { o.failAfterFirstMove = true }
