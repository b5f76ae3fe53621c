package runtime

var resizeOps = []opDef{}
