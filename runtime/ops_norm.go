package runtime

var normOps = []opDef{}
