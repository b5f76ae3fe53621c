package runtime

var elementwiseOps = []opDef{}
